"""The child wing: one forked worker process (consume loop, stepper, timer scheduler, metric
tally). It wires the pure engine (`runeworker.engine`) to the adapters (`runeworker.adapters`).
"""
