"""The supervisor wing: forks and watches worker children, drains on SIGTERM, talks to systemd.

It knows processes (`children`), their heartbeats (`liveness`) and systemd (`systemd`); it
never sees a message. `arbiter.Supervisor` is the main loop.
"""
