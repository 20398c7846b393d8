"""The child wing: one forked worker process: the consume loop (`worker`), the stepper that
keeps the connection served while a node blocks, the timer scheduler, the ports its broker and
store plug into (`ports`) and the events it reports to its observers (`hooks`). It wires the pure
engine (`runeworker.engine`) to the adapters (`runeworker.adapters`).
"""
