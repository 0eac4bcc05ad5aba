"""How a worker names itself in its consumer group, and the heartbeat its session timeout gives."""

from __future__ import annotations

from worker.consumer import HEARTBEATS_PER_SESSION, Membership, instance_id


def test_an_unset_or_blank_instance_id_means_dynamic_membership() -> None:
    assert instance_id(None, "host-a") is None
    assert instance_id("", "host-a") is None
    assert instance_id("   ", "host-a") is None


def test_hostname_in_the_instance_id_is_the_host_s_name() -> None:
    assert instance_id("worker-{hostname}", "3f2a9c1b7d0e") == "worker-3f2a9c1b7d0e"
    assert instance_id(" worker.1 ", "host-a") == "worker.1"


def test_heartbeats_fit_several_times_into_a_session() -> None:
    membership = Membership(group="spikewatch", session_timeout_seconds=15.0)

    assert membership.heartbeat_seconds == 3.0
    assert membership.heartbeat_seconds * HEARTBEATS_PER_SESSION == 15.0
