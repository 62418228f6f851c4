"""Changing a running box (docs/reload.md): a new configuration of the flow engine taken between
two bursts, while live flows keep the pipeline they started with until they end, or end now
with --migrate; checked in C under AddressSanitizer and UBSan (tests/asan/generation_harness.c),
and through flowos.runtime.reload on a running Bridge."""
import errno

import pytest

import asanbuild

ROOT = asanbuild.ROOT


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generations")
    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = asanbuild.build(tmp, "generation_harness", sources)
    run = asanbuild.run(exe, "--vdev", "net_null0")
    assert run.returncode == 0, run.stderr[-4000:]
    lines = {}
    for line in run.stdout.splitlines():
        name, rest = line.split(" ", 1)
        lines[name] = rest
    return lines


def fields(text):
    words = text.split()
    return {words[i]: int(words[i + 1], 0) for i in range(0, len(words) - 1, 2)}


def test_live_flows_keep_their_pipeline_and_new_flows_take_the_new_one(harness):
    tag1, tag2 = fields(harness["tag1"])["seen"], fields(harness["tag2"])["seen"]
    assert harness["generations_after_switch"] == "2"
    assert tag1 == 0xff                 # flows 0-7 started in generation 1 and stayed there
    assert tag2 == 0xff00               # flows 8-15 started after the switch: generation 2 alone
    assert harness["out_of_order"] == "0"   # their states moved to larger areas with them, intact


def test_a_definition_that_keeps_its_name_keeps_its_counters(harness):
    """At the switch, a definition of the new generation whose name the old one has goes on from
    the old one's packets, bytes and flows created; its live flows are its own (the old flows'
    stay the old generation's). One renamed starts from 0."""
    before, after = fields(harness["def_before_switch"]), fields(harness["def_after_switch"])
    assert before["packets"] == 80 and before["flows_created"] == 8 and before["flows_active"] == 8
    assert after == {"packets": 80, "bytes_kept": 1, "flows_created": 8, "flows_active": 0}
    assert fields(harness["def_after_rename"]) == {"packets": 0, "flows_created": 0}


def test_a_setup_that_fails_changes_nothing(harness):
    assert harness["refused_setup"] == "named"
    assert fields(harness["tag2"])["starts"] == 8     # generation 2 still took the new flows


def test_migrate_ends_old_flows_now_and_tears_their_generations_down(harness):
    tag1, tag2, tag3 = (fields(harness[f"tag{t}"]) for t in (1, 2, 3))
    assert harness["generations_after_migrate"] == "1"
    assert tag1["ends_reload"] == 8 and tag2["ends_reload"] == 8      # flow_end "reload", each processor's
    assert tag1["teardowns"] == 1 and tag2["teardowns"] == 1
    assert tag3["seen"] == 0xffff        # their next packets started flows in generation 3 (and a TCP one)


def test_an_old_generation_goes_when_its_last_flow_ends(harness):
    tag3 = fields(harness["tag3"])
    assert harness["generations_before_idle"] == "2" and harness["generations_after_idle"] == "1"
    assert tag3["ends_idle"] == 16 and tag3["teardowns"] == 1


def test_a_new_connection_on_an_old_generations_closed_one_starts_in_the_new_one(harness):
    """The SYN finds the closed connection's flow in generation 3 (looked up there: generation 4
    has no flow for it), ends it by FIN, and starts the new connection's flow in generation 4."""
    tag3, tag4 = fields(harness["tag3"]), fields(harness["tag4"])
    assert tag3["starts"] == 17 and tag3["ends_fin"] == 1
    assert tag4["starts"] == 2           # the new connection, and the flow kept for the next test


def test_a_shard_runs_at_most_eight_generations(harness):
    assert harness["most_generations"] == "8"
    assert harness["refused_at_tag"] == "12"      # 4, then 5..11 each kept by a live flow: -ENOSPC
    assert int(harness["teardowns_5_on"]) == 7    # every one torn down when the engine was freed


def test_nothing_is_lost_and_every_mbuf_comes_back(harness):
    s = fields("sent " + harness["sent"])
    assert s["packets"] == s["sent"] == s["tx"] and s["dropped"] == 0 and s["held"] == 0
    assert s["migrated"] == 16 and s["retired"] >= 3


class StubBridge:
    """What check_reloadable reads of a Bridge."""

    def __init__(self, worker=None, engine=object(), clock="tsc", tiers=(), relay_engine=None, workers=1):
        from flowos.configuration import config as flowos_config
        self.worker, self.engine, self.tiers, self.relay_engine = worker, engine, list(tiers), relay_engine
        self.config = flowos_config.Config()
        self.config.engine.clock = clock
        self.config.run.workers = workers


def flows_of(pipeline):
    from flowos.configuration import flows as flow_defs
    return flow_defs.parse_flows([{"name": "all", "pipeline": pipeline}])


def test_what_a_reload_cannot_change_is_refused_by_name():
    import dataclasses
    from flowos.configuration import flows as flow_defs
    from flowos.runtime.reload import check_reloadable

    engine = flow_defs.EngineConfig()
    assert check_reloadable(StubBridge(), flows_of(["counter"]), engine) is None
    assert "without flows" in check_reloadable(StubBridge(engine=None), flows_of(["counter"]), engine)
    assert "engine.clock" in check_reloadable(StubBridge(clock="capture"), flows_of(["counter"]), engine)
    python = flows_of(["pyprocs.control:Silent"])
    assert "started without one" in check_reloadable(StubBridge(), python, engine)
    single = flows_of(["pyprocs.pids:Everything"])
    assert "needs a single instance" in check_reloadable(StubBridge(workers=2), single, engine)
    # Worker processes: each has its own interpreter; the relay decodes with engine.malformed.
    processes = StubBridge(engine=None, relay_engine=object(), workers=2)
    assert check_reloadable(processes, python, engine) is None
    assert "the relay" in check_reloadable(processes, python, dataclasses.replace(engine, malformed="drop"))


def test_edits_name_what_is_wrong():
    from flowos.errors import FlowOSError
    from flowos.runtime.reload import edit

    flows = flows_of(["counter", {"hold": {"packets": 2}}])
    assert [[p.name for p in s] for s in edit(flows, "attach", {"flow": "all", "processor": "ttl", "stage": 1})[0].stages] \
        == [["counter"], ["ttl"], ["hold"]]
    assert [[p.name for p in s] for s in edit(flows, "detach", {"flow": "all", "processor": "counter"})[0].stages] \
        == [["hold"]]
    assert edit(flows, "detach", {"flow": "all"}) == []
    added = edit(flows, "attach", {"definition": {"name": "dns", "match": {"dport": 53}}, "position": 0})
    assert [f.name for f in added] == ["dns", "all"]
    assert [[p.name for p in s] for s in flows[0].stages] == [["counter"], ["hold"]]    # the running one's: untouched
    for what, request, why in (
            ("attach", {"flow": "web", "processor": "ttl"}, "no flow definition 'web'"),
            ("attach", {"flow": "all", "processor": "nosuch"}, "no processor 'nosuch'"),
            ("attach", {"flow": "all", "processor": "ttl", "stage": 9}, "position from 0 to 2"),
            ("attach", {"definition": {"name": "all"}}, "named 'all' already"),
            ("detach", {"flow": "all", "processor": "ttl"}, "has no processor 'ttl' (it has: counter, hold)"),
            ("detach", {"flow": "all", "bogus": 1}, "unknown parameters: bogus")):
        with pytest.raises(FlowOSError, match=".*") as e:
            edit(flows, what, request)
        assert why in str(e.value), (request, str(e.value))


def test_a_reload_naming_a_port_the_run_has_not_is_refused():
    """Port names are checked when a reload is (as at start); building the generation then maps
    them to port ids without checking again."""
    from types import SimpleNamespace

    from flowos.configuration import flows as flow_defs
    from flowos.runtime.reload import check_reloadable
    bridge = StubBridge()
    bridge.config.ports = [SimpleNamespace(name="lan")]
    engine = flow_defs.EngineConfig()
    assert check_reloadable(bridge, flows_of([{"mirror": {"port": "lan"}}]), engine) is None
    assert check_reloadable(bridge, flows_of([{"mirror": {"port": "wan"}}]), engine) == \
        "flows[0].pipeline[0].port: no port named 'wan' (ports: lan)"


def test_an_attach_past_the_pipelines_limits_is_refused():
    """A reload's edit keeps the limits the configuration has (flows.check_pipeline_size, shared)."""
    from flowos.errors import FlowOSError
    from flowos.facts import MAX_STAGES
    from flowos.runtime.reload import edit
    flows = flows_of(["counter"] * MAX_STAGES)
    with pytest.raises(FlowOSError, match=rf"^flow 'all': at most {MAX_STAGES} stages, got {MAX_STAGES + 1}$"):
        edit(flows, "attach", {"flow": "all", "processor": "counter"})
    assert len(flows[0].stages) == MAX_STAGES     # the running flows unchanged


def test_a_writer_sharing_a_stage_is_refused_by_the_c_api(harness):
    """The writer rule is checked once for FlowOS's users, by the configuration
    (flows.parse_pipeline, with the file and key); fo_pipeline_conf_add_processor still refuses a
    C caller's writer in a shared stage (docs/architecture.md, "The package")."""
    ret, _, why = harness["writer_shares"].partition(" ")
    assert int(ret) == -errno.EINVAL and "a writer stands alone in its stage" in why


def test_a_processor_of_no_known_level_is_refused_by_the_c_api(harness):
    """fo_pipeline_conf_add_processor checks ops.level as it checks the rest of the ops (the Python
    and Cython tiers check it first; a C caller may not)."""
    ret, _, why = harness["no_level"].partition(" ")
    assert int(ret) == -errno.EINVAL and why == "processor tagged: level 4 is not one of l2, l3, l4, payload"
