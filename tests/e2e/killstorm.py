"""Kill-storm recovery figure (issue 14): `runeworker serve` with 2 children under a load of
2,000 ten-node chains; 10 SIGKILLs of consuming children about 0.45 s apart; prints how long
after the last kill both children consume again, and whether every execution got exactly one
completion. Needs the local RabbitMQ (guest/guest) and Redis; makes and deletes its own vhost.

    .venv/bin/python tests/e2e/killstorm.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serving import Rune, Serve, log_chain, serve_env, write_config


def main() -> int:
    vhost = f"rwks-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
    )
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    tmp = Path(tempfile.mkdtemp())
    write_config(
        tmp / "c.toml",
        {
            "worker": {"processes": 2},
            "supervisor": {"restart_backoff": 1.0, "restart_backoff_max": 30.0},
            "metrics": {"listen": "127.0.0.1:0", "directory": str(tmp / "m")},
            "logging": {"format": "text"},
        },
    )
    rune = Rune(url)
    env = serve_env(url, "redis://127.0.0.1:6379/0", f"rwks:{uuid.uuid4().hex[:6]}:")
    serve = Serve(tmp, tmp / "c.toml", env)
    try:
        rune.wait_consumers(2)
        ids = rune.publish(log_chain(10), 2000)
        time.sleep(1.0)
        began, kills = time.monotonic(), 0
        while kills < 10:
            found = {int(p) for p in re.findall(r"child (\d+) consuming ", serve.log())}
            pids = found & serve.children()
            if not pids:
                time.sleep(0.01)
                continue
            os.kill(min(pids), signal.SIGKILL)
            kills += 1
            time.sleep(0.45)
        last = time.monotonic()
        rune.wait_consumers(2, timeout=60)
        back = time.monotonic()
        print(
            f"10 kills in {last - began:.2f} s; both children consuming again "
            f"{back - last:.2f} s after the last kill"
        )
        rune.wait_done(ids, timeout=300, settle=0.5)
        done = sum(1 for i in ids if rune.completions.get(i))
        doubled = sum(1 for i in ids if len(rune.completions.get(i, [])) > 1)
        print(f"completions: {done} of {len(ids)}, doubled: {doubled}")
        return 0 if done == len(ids) and not doubled else 1
    finally:
        serve.kill()
        rune.close()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)


if __name__ == "__main__":
    sys.exit(main())
