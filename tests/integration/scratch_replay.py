import argparse, json, uuid
from wire import Wire, running_worker, master, node, edge
from runeworker.commands.dlq import dlq

def test_replay(amqp_url, redis_url, redis_prefix, capsys, monkeypatch):
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    q = f"dlq-scratch-{uuid.uuid4().hex[:6]}"
    m = master([node("t", "ManualTrigger"), node("say", "log", message="x" * 2000)], [edge("t", "say")], current="t")
    with running_worker(amqp_url, redis_url, redis_prefix, **{"broker.dead_letter_queue": q, "broker.max_message_bytes": 1000}):
        w = Wire(amqp_url)
        w.publish_api(m)
        print("first", w.completion(m["execution_id"])["failure_reason"])
        w.close()
    ns = argparse.Namespace(config=None, dlq_command="replay", id="#1", all=False, to=None)
    with running_worker(amqp_url, redis_url, redis_prefix, **{"broker.dead_letter_queue": q}):
        w = Wire(amqp_url)
        assert dlq(ns, {"broker.url": amqp_url, "broker.dead_letter_queue": q}) == 0
        c = w.completion(m["execution_id"])
        print("second", c["status"], c.get("failure_reason"), [ (g.body["node_id"], g.body["status"]) for g in w.statuses(m["execution_id"])])
        w.close()
    with capsys.disabled():
        pass
