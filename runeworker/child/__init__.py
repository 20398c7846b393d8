"""The child wing: one forked worker process: the consume loop (`worker`), bringing its broker
and store up and waiting for them (`services`), the stepper that keeps the connection served
while a node blocks, the timer scheduler, the receipts of published steps and the commits in
doubt (`receipts`, `doubts`), the ports its broker and store plug into (`ports`) and the events
it reports to its observers (`hooks`). It wires the pure engine (`runeworker.engine`) to the
adapters (`runeworker.adapters`).
"""
