"""`runeworker bench`: the workloads, the contenders (runeworker and the bare pika floor) and
the codec micro-benchmark. Nothing here is imported by the runtime.
"""
