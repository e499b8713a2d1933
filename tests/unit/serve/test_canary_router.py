"""The canary traffic split in process: the share, the sticky key, per-arm evidence, the swap."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from fakes import ROW, FakePredictor, score

from mlcycle.cli import cli
from mlcycle.errors import ConfigError
from mlcycle.inference_log import InferenceLog, read_inference_log
from mlcycle.serve.app import ModelSource, ServeOptions
from mlcycle.serve.canary import BUCKETS, CanaryRouter, bucket
from mlcycle.serve.holder import GONE
from mlcycle.serve.options import parse_share


@pytest.mark.parametrize(
    ("text", "share"), [("10%", 0.1), ("0.1", 0.1), ("12.5 %", 0.125), ("100%", 1.0), ("1", 1.0)]
)
def test_a_share_is_read_as_a_percentage_or_a_fraction(text: str, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15", "write a percentage as 15%"),
        ("abc", "is not a share"),
        ("0", "above 0"),
        ("-5%", "above 0"),
        ("101%", "at most 100%"),
        ("nan", "above 0"),
        ("", "is not a share"),
    ],
)
def test_a_bad_share_is_refused_with_the_way_to_write_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_share(text)


def test_shadow_and_canary_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="cannot be combined"):
        ServeOptions(shadow=True, canary=0.1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--canary", "15"], 2, "Invalid value for '--canary'"),
        (["--canary", "ten"], 2, "10% or 0.1"),
        (["--canary", "10%", "--shadow"], 1, "cannot be combined"),
        (["--canary", "10%", "--canary-key", "not a header"], 1, "HTTP header name"),
    ],
)
def test_mlcycle_serve_refuses_a_bad_canary_before_doing_anything(
    args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--model", "models:/m@champion", *args])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_a_key_always_lands_in_the_same_bucket_and_a_larger_share_only_adds_keys() -> None:
    # SHA-256, not hash(): the same in every process, worker and restart.
    assert (
        bucket(b"user-1")
        == int.from_bytes(
            bytes.fromhex("c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b")[:8],
            "big",
        )
        % BUCKETS
    )
    keys = [f"user-{i}".encode() for i in range(2000)]
    ten, fifty = CanaryRouter(0.1, "X-Canary-Key"), CanaryRouter(0.5, "X-Canary-Key")
    on_ten = {k for k in keys if ten.to_challenger([(b"x-canary-key", k)])}
    on_fifty = {k for k in keys if fifty.to_challenger([(b"x-canary-key", k)])}
    assert on_ten < on_fifty
    assert 150 <= len(on_ten) <= 250  # 10 % of 2,000 within ~3.7 sigma


def test_without_a_key_the_draw_is_reproducible_from_the_seed() -> None:
    a, b = CanaryRouter(0.3, "k", seed=7), CanaryRouter(0.3, "k", seed=7)
    assert [a.to_challenger([]) for _ in range(500)] == [b.to_challenger([]) for _ in range(500)]
    c = CanaryRouter(0.3, "k", seed=8)
    assert [c.to_challenger([]) for _ in range(500)] != [a.to_challenger([]) for _ in range(500)]


def test_an_empty_key_is_no_key_and_does_not_pin_every_blank_client_to_one_arm() -> None:
    # sha256(b"") falls in bucket 1652: at 20 % every blank key went to the challenger.
    router, seeded = CanaryRouter(0.2, "X-Canary-Key"), CanaryRouter(0.2, "X-Canary-Key")
    blank = [router.to_challenger([(b"x-canary-key", b" " * (i % 2))]) for i in range(1000)]
    assert blank == [seeded.to_challenger([]) for _ in range(1000)]
    assert 120 <= sum(blank) <= 280
    # Surrounding blanks do not change a key's arm.
    assert router.to_challenger([(b"x-canary-key", b" user-1 ")]) == router.to_challenger(
        [(b"x-canary-key", b"user-1")]
    )


def test_a_canary_answers_its_share_and_every_response_names_version_and_role(
    make_client, tmp_path
) -> None:
    log = InferenceLog(str(tmp_path), flush_seconds=0.05)
    source = ModelSource.fixed(FakePredictor("1"), challenger=FakePredictor("2"))
    client = make_client(source=source, log=log, canary=0.25)
    seen = []
    for i in range(400):
        r = score(client, headers={"X-Request-Id": f"r{i}"})
        assert r.status_code == 200
        seen.append((r.headers["x-model-version"], r.headers["x-model-role"]))
    counts = Counter(seen)
    assert set(counts) == {("1", "champion"), ("2", "challenger")}
    assert 60 <= counts[("2", "challenger")] <= 140  # 100 expected, ~5.8 sigma either way
    info = client.get("/info").json()
    assert info["canary"] == {"share": 0.25, "key_header": "X-Canary-Key", "active": True}
    assert info["challenger"]["version"] == "2"
    text = client.get("/metrics").text
    for (version, role), n in counts.items():
        series = f'role="{role}",route="/invocations",status="200",version="{version}"'
        assert f"mlcycle_requests_total{{{series}}} {float(n)}" in text
    assert 'mlcycle_model_info{backend="fake",name="fake",pid=' in text
    client.__exit__(None, None, None)
    df = read_inference_log(str(tmp_path), "fake", role=None)
    assert Counter(zip(df["model_version"], df["role"], strict=True)) == counts


def test_the_same_key_stays_on_its_arm(make_client) -> None:
    source = ModelSource.fixed(FakePredictor("1"), challenger=FakePredictor("2"))
    client = make_client(source=source, canary=0.5, canary_key="X-User")
    router = CanaryRouter(0.5, "X-User")
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        expected = (
            "challenger" if router.to_challenger([(b"x-user", user.encode())]) else "champion"
        )
        roles = {score(client, headers={"X-User": user}).headers["x-model-role"] for _ in range(5)}
        assert roles == {expected}


def test_a_challenger_removed_or_promoted_ends_the_canary_between_requests(make_client) -> None:
    champion, challenger = FakePredictor("1"), FakePredictor("2")
    state = {"champion": champion, "challenger": challenger}
    lock = threading.Lock()

    def poll(current: Any) -> Any:
        with lock:
            return state["champion"] if state["champion"] is not current else None

    def poll_challenger(current: Any) -> Any:
        with lock:
            now = state["challenger"]
        if now is None:
            return GONE if current is not None else None
        return now if now is not current else None

    source = ModelSource(lambda: champion, poll, poll_challenger)
    client = make_client(source=source, canary=0.5, reload_interval=0.02)
    roles = Counter(score(client).headers["x-model-role"] for _ in range(60))
    assert roles["challenger"] and roles["champion"]
    with lock:  # promotion: @champion moves to the challenger, @challenger is removed
        state["champion"], state["challenger"] = challenger, None
    deadline = time.monotonic() + 10
    while client.get("/info").json()["canary"]["active"]:
        assert time.monotonic() < deadline, "the canary never ended"
        time.sleep(0.02)
    answers = [score(client) for _ in range(40)]
    assert {(r.status_code, r.headers["x-model-version"]) for r in answers} == {(200, "2")}
    assert {r.headers["x-model-role"] for r in answers} == {"champion"}
    with lock:  # a new challenger starts a new canary by itself
        state["challenger"] = FakePredictor("3")
    while not client.get("/info").json()["canary"]["active"]:
        assert time.monotonic() < deadline, "the new canary never started"
        time.sleep(0.02)
    versions = Counter(score(client, [ROW]).headers["x-model-version"] for _ in range(60))
    assert versions.keys() == {"2", "3"}


def test_the_share_recorded_on_the_challenger_replaces_the_startup_share_between_requests(
    make_client,
) -> None:
    champion, challenger = FakePredictor("1"), FakePredictor("2")
    state: dict[str, Any] = {"challenger": challenger, "shares": {}}

    def poll_challenger(current: Any) -> Any:
        now = state["challenger"]
        return now if now is not current else None

    source = ModelSource(
        lambda: champion,
        None,
        poll_challenger,
        poll_share=lambda ch: state["shares"].get(ch.version),
    )
    client = make_client(source=source, canary=0.1, reload_interval=0.02)

    def wait_share(share: float) -> None:
        deadline = time.monotonic() + 10
        while client.get("/info").json()["canary"]["share"] != share:
            assert time.monotonic() < deadline, f"the share never became {share}"
            time.sleep(0.02)

    assert client.get("/info").json()["canary"]["share"] == 0.1
    state["shares"]["2"] = 1.0  # every keyless request on the challenger: easy to see
    wait_share(1.0)
    assert {score(client).headers["x-model-role"] for _ in range(30)} == {"challenger"}
    state["challenger"] = FakePredictor("3")  # a new challenger: no share recorded on it
    wait_share(0.1)
    roles = Counter(score(client).headers["x-model-role"] for _ in range(200))
    assert roles["challenger"] < 60


def test_a_router_routes_by_the_share_passed_with_the_request() -> None:
    router = CanaryRouter(0.1, "X-User")
    keys = [f"user-{i}".encode() for i in range(2000)]
    at_10 = {k for k in keys if router.to_challenger([(b"x-user", k)])}
    at_50 = {k for k in keys if router.to_challenger([(b"x-user", k)], 0.5)}
    assert at_10 < at_50 and 850 < len(at_50) < 1150
