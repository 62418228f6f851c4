"""One read-only pipeline configuration for every worker (docs/architecture.md, "Workers and
shards"): flowos-run builds the flow engine's definitions, classifier and processors' ops and
parameters once (flowos.boundary._engine.PipelineConf, ext/include/flowos/fo_pipeline_conf.h) and makes
each worker's shard from it; each shard has processor instances of its own, and the
configuration is freed with the last shard."""
import errno
import json
import subprocess
import sys
import textwrap

from conftest import remove_runtime_folder, unique_prefix


def run_script(tmp_path, body):
    """Runs body (Python) in a process of its own (an EAL of its own); returns what it printed as JSON."""
    prefix = unique_prefix()
    script = textwrap.dedent(f"""
        import json
        from flowos.configuration import config as flowos_config
        from flowos.runtime import machine, runner
        PREFIX = {prefix!r}
    """) + textwrap.dedent(body)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    finally:
        remove_runtime_folder(prefix)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_workers_shards_share_one_conf(tmp_path):
    seen = run_script(tmp_path, """
        config = flowos_config.from_dict({
            "ports": [{"name": "a", "vdev": "net_null0"}], "forward": ["a -> a"],
            "run": {"workers": 2}, "eal": {"file_prefix": PREFIX},
            "flows": [{"name": "all", "pipeline": [{"counter": {"max_flows": 4}}, {"ttl": {"decrement": 1}}]}],
        })
        machine.check(flowos_config.finish(config, cpus=[0, 1]))
        bridge = runner.Bridge(config)
        bridge.start()
        try:
            shards = bridge.engine.all
            seen = {"confs": [e.conf_address() for e in shards], "same_object": shards[0].conf is shards[1].conf,
                    "users": [e.conf_users() for e in shards], "creator": shards[0].conf.users}
        finally:
            bridge.close("test")
        print(json.dumps(seen))
    """)
    assert seen["confs"][0] == seen["confs"][1] != 0 and seen["same_object"], seen   # one conf for both shards
    assert seen["users"] == [2, 2]   # held by the two shards alone: its creator let it go once they were made
    assert seen["creator"] == 0


def test_the_conf_outlives_its_creator_until_the_last_shard_is_freed(tmp_path):
    seen = run_script(tmp_path, """
        from flowos.configuration import eal_args
        from flowos.runtime import hugepages
        from flowos.boundary._engine import Engine, PipelineConf
        from flowos.boundary._runtime import Eal, Mempool
        from flowos.errors import FlowOSError
        memory = hugepages.MemoryMode("no-huge", 128, None, "")
        eal = Eal.start(eal_args.eal_argv(memory, PREFIX, "0@(0),1@0", []), "eal.log")
        pool = Mempool.create(eal, "pool", 1023, 0, 2048)
        conf = PipelineConf.create(pool)
        conf.add_definition("all", {}, 64, 1 << 20, "drop")
        conf.add_processor(0, 0, "counter", {"max_flows": 8})
        conf.build()
        try:
            conf.add_definition("late", {}, 64, 1 << 20, "drop")
        except FlowOSError as e:
            seen = {"built": str(e)}    # read-only once built
        shards = [Engine.create(conf, 16), Engine.create(conf, 16)]
        seen["users"] = [conf.users]
        for e in shards:
            e.build()
        conf.close()
        seen["after_creator"] = [e.conf_users() for e in shards]
        seen["reports"] = [e.report(0, 0) for e in shards]
        shards[0].close()
        seen["after_first"] = shards[1].conf_users()
        for what, call in (("engine", lambda: Engine.create(conf, 16)),
                           ("definition", lambda: conf.add_definition("late", {}, 64, 1 << 20, "drop"))):
            try:
                call()
            except FlowOSError as e:
                seen[what] = str(e)
        shards[1].close()
        pool.close()
        eal.close()
        print(json.dumps(seen))
    """)
    assert seen["users"] == [3]            # the creator and two shards
    assert seen["after_creator"] == [2, 2]
    assert seen["after_first"] == 1        # still there for the second shard
    assert seen["reports"][0] is not None and seen["reports"][1] is not None
    assert "late" in seen["built"]
    assert "closed" in seen["engine"] and "closed" in seen["definition"]   # the creator's handle is gone


def test_a_c_failure_keeps_its_errno(tmp_path):
    """flowos.boundary._runtime.check is the one place a C return code becomes a FlowOSError, and
    the errno goes with it: C refuses a worker of burst 0 with EINVAL (Python no longer checks
    the burst first: the configuration did, and C is the last word)."""
    seen = run_script(tmp_path, """
        from flowos.boundary._runtime import Worker
        from flowos.errors import FlowOSError
        config = flowos_config.from_dict({"ports": [{"name": "a", "vdev": "net_null0"}], "forward": ["a -> a"],
                                          "eal": {"file_prefix": PREFIX}})
        machine.check(flowos_config.finish(config, cpus=[0, 1]))
        bridge = runner.Bridge(config)
        bridge.start()
        seen = None
        try:
            Worker.create(bridge.eal, burst=0)
        except FlowOSError as e:
            seen = {"errno": e.errno, "message": str(e)}
        finally:
            bridge.close("test")
        print(json.dumps(seen))
    """)
    assert seen == {"errno": errno.EINVAL, "message": "cannot create a worker: Invalid argument"}
