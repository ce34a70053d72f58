"""`pricing serve`: every endpoint against a real uvicorn server on a local port.

The servers run in threads of the test process (or, for SIGHUP and the
command line, as a `pricing serve` subprocess), on 127.0.0.1 only, and every
loop of requests is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

pytest.importorskip("starlette", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from pricing_dsl import _serve  # noqa: E402
from pricing_dsl._openapi import document  # noqa: E402

from .conftest import ROOT, RULESETS  # noqa: E402

SCHEMAS = ROOT / "pricing_dsl" / "schemas"
ACME = {"period": "2026-08", "mau": 26250}
# acme in 2026-08 with only MAU: base 529.00 + hipaa 500.00 + e2e_encryption 250.00
# + (26250 - 25000) users x 0.09 = 112.50.
ACME_TOTAL = "1391.50"


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


class Server:
    def __init__(self, service: _serve.Service, **options: Any) -> None:
        self.service = service
        self.server, self.thread, port = _serve.run_in_thread(_serve.create_app(service, **options))
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.service.stop_watching()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(_serve.Service([str(RULESETS)]))
    yield s
    s.close()


def _codes(response: Any) -> list[str]:
    return [d["code"] for d in response.json()["diagnostics"]]


# ------------------------------------------------------------------ rating


def test_rate_returns_the_invoice_in_the_invoice_schema(server: Server) -> None:
    r = server.client.post("/v1/rate?contract=acme", content=json.dumps(ACME))
    assert r.status_code == 200
    body = r.json()
    jsonschema.validate(body, _schema("invoice"), cls=jsonschema.Draft202012Validator)
    assert body["total"] == ACME_TOTAL
    assert body["lines"][1]["code"] == "mau_overage"
    assert body["lines"][1]["amount"] == "112.50"
    # Explanations by default, as `pricing rate --format json` gives them.
    assert body["lines"][1]["explanation"]["details"] == [
        "used 26250 users",
        "25000 users included",
    ]
    version = server.client.get("/readyz").json()["version"]
    assert r.headers[_serve.VERSION_HEADER] == version


def test_rate_reads_numbers_exactly_and_takes_the_contract_from_the_usage(server: Server) -> None:
    # 0.1 must stay 0.1 (a float would be 0.1000000000000000055…): 26250.1 users is refused
    # as a fraction, and 1000.5 voice minutes x 0.001 = 1.0005, rounded half up to 1.00.
    usage = '{"contract": "acme", "period": "2026-08", "mau": 26250, "voice_minutes": 1000.5}'
    r = server.client.post("/v1/rate?explain=false", content=usage)
    assert r.status_code == 200
    body = r.json()
    assert "explanation" not in body["lines"][0]
    voice = next(ln for ln in body["lines"] if ln["code"] == "voice")
    assert (voice["quantity"], voice["amount"]) == ("1000.5", "1.00")
    assert body["total"] == "1392.50"
    r = server.client.post("/v1/rate?contract=acme", content='{"period": "2026-08", "mau": 0.1}')
    assert r.status_code == 400 and _codes(r) == ["E401"]


def test_invoice(server: Server) -> None:
    r = server.client.post(
        "/v1/invoice?contract=starter&date=2026-09-01&explain=false",
        content='{"period": "2026-08", "mau": 1500}',
    )
    assert r.status_code == 200, r.text
    body = r.json()
    jsonschema.validate(body, _schema("invoice"), cls=jsonschema.Draft202012Validator)
    # Fees in advance for September (99.00), usage of August in arrears: 500 x 0.12.
    assert body["issue_date"] == "2026-09-01"
    assert body["total"] == "159.00"
    # No body: no usage, only the fees.
    r = server.client.post("/v1/invoice?contract=starter&date=2026-09-01")
    assert r.json()["total"] == "99.00"
    r = server.client.post("/v1/invoice?contract=starter&date=2026-09-15")
    assert r.status_code == 400 and _codes(r) == ["E304"]
    r = server.client.post("/v1/invoice?contract=starter")
    assert r.status_code == 400 and _codes(r) == ["E700"]


def test_quote(server: Server) -> None:
    request = {
        "contract": "acme",
        "vary": "mau=0..50000",
        "step": 25000,
        "fix": {"period": "2026-08"},
    }
    r = server.client.post("/v1/quote", content=json.dumps(request))
    assert r.status_code == 200, r.text
    rows = r.json()["contracts"][0]["rows"]
    # 1279.00 of fees; above 25000 users, 0.09 each: 25000 x 0.09 = 2250.00.
    assert [(row["value"], row["total"]) for row in rows] == [
        ("0", "1279.00"),
        ("25000", "1279.00"),
        ("50000", "3529.00"),
    ]
    r = server.client.post("/v1/quote", content='{"contract": "acme", "vary": "mua=0..5"}')
    assert r.status_code == 400
    assert "did you mean `mau`" in r.json()["diagnostics"][0]["message"]
    r = server.client.post("/v1/quote", content='{"contract": "acme", "vary": "mau=0..5", "x": 1}')
    assert r.status_code == 400 and _codes(r) == ["E700"]


def test_batch_streams_one_line_per_record(server: Server) -> None:
    records = [
        json.dumps({"contract": "acme", **ACME}),
        "",
        '{"contract": "nope"}',
        "{bad",
        json.dumps(ACME),
    ]
    r = server.client.post("/v1/rate/batch?contract=acme", content="\n".join(records) + "\n")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    out = [json.loads(line) for line in r.text.splitlines()]
    assert [o["line"] for o in out] == [1, 3, 4, 5]
    assert out[0]["invoice"]["total"] == ACME_TOTAL
    assert [d["code"] for d in out[1]["diagnostics"]] == ["E301"]
    assert [d["code"] for d in out[2]["diagnostics"]] == ["E400"]
    assert out[3]["invoice"]["total"] == ACME_TOTAL  # the contract from ?contract=
    assert "explanation" not in out[0]["invoice"]["lines"][0]


def test_batch_time_limit() -> None:
    s = Server(_serve.Service([str(RULESETS)]), batch_seconds=0.0)
    try:
        r = s.client.post("/v1/rate/batch?contract=acme", content=json.dumps(ACME) + "\n")
        out = [json.loads(line) for line in r.text.splitlines()]
        assert [d["code"] for d in out[-1]["diagnostics"]] == ["E703"]
        assert "invoice" not in out[-1]
    finally:
        s.close()


# ------------------------------------------------------------------ checking


def test_check_reports_diagnostics_at_their_lines(server: Server) -> None:
    text = (
        'currency USD\nplan p "P" {\n  base 10.00 per month!\n'
        "  mau included 10 overage 0.10 per user\n"
        "  concurrency 5% overage 1.00 per connection\n  voice 0.001 per minute\n"
        "  video 0.003 per minute\n}\n"
    )
    r = server.client.post("/v1/check?filename=draft.pricing", content=text)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False
    d = body["diagnostics"][0]
    jsonschema.validate(d, _schema("diagnostics"))
    assert (d["code"], d["path"], d["line"]) == ("E100", "draft.pricing", 3)
    r = server.client.post("/v1/check", content=text.replace("!", ""))
    assert r.json()["ok"] is True


def test_check_with_the_served_ruleset_and_nothing_from_disk(
    server: Server, tmp_path: Path
) -> None:
    draft = 'contract d "D" extends pro {\n  mau included 20_000\n}\n'
    # Alone, `pro` is unknown; beside the served files, it is the catalog's.
    alone = server.client.post("/v1/check", content=draft).json()
    assert [d["code"] for d in alone["diagnostics"]] == ["E201"]
    served = server.client.post("/v1/check?with=served", content=draft).json()
    assert served["ok"] is True
    # A name in the request is a label, never a file that is opened.
    secret = tmp_path / "secret.pricing"
    secret.write_text("plan x {\n")
    r = server.client.post(f"/v1/check?filename={secret}", content="currency USD\n")
    assert r.json() == {"ok": True, "diagnostics": []}
    r = server.client.post(f"/v1/check?with=served&replaces={secret}", content=draft)
    assert r.status_code == 400 and _codes(r) == ["E700"]


def test_draft_rates_and_quotes_an_edited_contract(server: Server) -> None:
    files = server.client.get("/v1/sources").json()["files"]
    name = next(f["name"] for f in files if f["name"].endswith("acme.pricing"))
    text = next(f["text"] for f in files if f["name"] == name).replace(
        "0.09 per user", "0.10 per user"
    )
    request = {
        "text": text,
        "filename": name,
        "replaces": name,
        "contract": "acme",
        "usage": ACME,
        "quote": {"vary": "mau=25000..26000", "step": 1000},
    }
    body = server.client.post("/v1/draft", content=json.dumps(request)).json()
    assert body["diagnostics"] == []
    assert body["contracts"] == ["acme"]
    assert body["invoice"]["total"] == "1404.00"  # 1250 x 0.10 = 125.00 instead of 112.50
    rows = body["quote"]["contracts"][0]["rows"]
    assert [r["total"] for r in rows] == ["1279.00", "1379.00"]
    # The served ruleset itself is unchanged.
    r = server.client.post("/v1/rate?contract=acme", content=json.dumps(ACME))
    assert r.json()["total"] == ACME_TOTAL


# ------------------------------------------------------------------ the served ruleset


def test_contracts_export_view(server: Server) -> None:
    everything = server.client.get("/v1/contracts").json()
    jsonschema.validate(everything, _schema("export"), cls=jsonschema.Draft202012Validator)
    assert "acme" in [c["id"] for c in everything["contracts"]]
    one = server.client.get("/v1/contracts/acme").json()
    assert [c["id"] for c in one["contracts"]] == ["acme"]
    r = server.client.get("/v1/contracts/acem")
    assert r.status_code == 404 and _codes(r) == ["E301"]
    assert "did you mean `acme`" in r.json()["diagnostics"][0]["message"]


def test_health_ready_metrics(server: Server) -> None:
    assert server.client.get("/healthz").json() == {"ok": True}
    ready = server.client.get("/readyz").json()
    assert ready["ready"] is True and ready["last_reload"]["ok"] is True
    server.client.post("/v1/rate?contract=acme", content=json.dumps(ACME))
    server.client.post("/v1/rate?contract=acme", content="{")
    text = server.client.get("/metrics").text
    assert 'pricing_requests_total{route="rate",status="200"}' in text
    assert 'pricing_request_errors_total{route="rate"}' in text
    assert 'pricing_request_seconds_bucket{route="rate",le="+Inf"}' in text
    assert f'pricing_ruleset_info{{version="{ready["version"]}"}} 1' in text
    assert 'pricing_reloads_total{result="error"} 0' in text


def test_openapi_is_served_and_kept_in_schemas(server: Server) -> None:
    kept = json.loads((SCHEMAS / "openapi.json").read_text())
    # Regenerate with: python -m pricing_dsl._openapi > pricing_dsl/schemas/openapi.json
    assert kept == document()
    assert server.client.get("/openapi.json").json() == kept
    # Every route the app has is documented, and the reverse.
    app_paths = {
        r.path
        for r in _serve.create_app(server.service).routes  # type: ignore[attr-defined]
        if r.path != "/"
    }
    assert app_paths == set(kept["paths"])


def test_playground_page_is_served(server: Server) -> None:
    r = server.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/check" in r.text


# ------------------------------------------------------------------ bad input and safety


@pytest.mark.parametrize(
    ("body", "query", "code"),
    [
        ("{", "contract=acme", "E400"),
        ('{"mau": 1, "mau": 2}', "contract=acme", "E400"),
        ('{"mau": NaN}', "contract=acme", "E400"),
        ("", "contract=acme", "E400"),
        ("[1, 2]", "contract=acme", "E700"),
        (b"\xff\xfe{", "contract=acme", "E700"),
        ('{"mau": 5}', "", "E700"),
        ('{"mau": 5}', "contract=acme&bogus=1", "E700"),
        ('{"mau": 5}', "contract=acme&explain=maybe", "E700"),
        ('{"mau": 5, "period": "2026-08", "voice_minute": 3}', "contract=acme", "E401"),
        ('{"mau": 5}', "contract=acme", "E303"),
    ],
)
def test_bad_input_is_400_with_a_diagnostic(
    server: Server, body: str | bytes, query: str, code: str
) -> None:
    r = server.client.post(f"/v1/rate?{query}", content=body)
    assert r.status_code == 400
    assert _codes(r)[0] == code
    jsonschema.validate(r.json()["diagnostics"][0], _schema("diagnostics"))


def test_unknown_endpoint_and_method(server: Server) -> None:
    r = server.client.get("/v1/nothing")
    assert r.status_code == 404 and _codes(r) == ["E704"]
    r = server.client.get("/v1/rate")
    assert r.status_code == 405 and _codes(r) == ["E704"]


def test_bearer_token() -> None:
    s = Server(_serve.Service([str(RULESETS)]), token="s3cret-token")
    try:
        url = "/v1/rate?contract=acme"
        r = s.client.post(url, content=json.dumps(ACME))
        assert r.status_code == 401 and _codes(r) == ["E702"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = s.client.post(url, content=json.dumps(ACME), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        assert s.client.post(url, content=json.dumps(ACME), headers=auth).status_code == 200
        assert s.client.get("/metrics").status_code == 401
        # Probes and the page itself stay open; the page asks for the token.
        assert s.client.get("/healthz").status_code == 200
        assert s.client.get("/readyz").status_code == 200
    finally:
        s.close()


def test_body_size_limit() -> None:
    s = Server(_serve.Service([str(RULESETS)]), max_body=200)
    try:
        big = json.dumps({**ACME, "account": "x" * 300})
        r = s.client.post("/v1/rate?contract=acme", content=big)
        assert r.status_code == 413 and _codes(r) == ["E701"]

        # Without a Content-Length (chunked), the limit holds while reading.
        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b" " * 50

        r = s.client.post("/v1/rate?contract=acme", content=chunks())
        assert r.status_code == 413 and _codes(r) == ["E701"]
        assert s.client.post("/v1/rate?contract=acme", content=json.dumps(ACME)).status_code == 200
    finally:
        s.close()


def test_token_file_problems(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(_serve.PricingError) as exc:
        _serve.read_token(str(empty))
    assert exc.value.codes == ["E705"]
    with pytest.raises(_serve.PricingError):
        _serve.read_token(str(tmp_path / "missing"))


# ------------------------------------------------------------------ hot reload


def _copy_rulesets(tmp_path: Path) -> Path:
    target = tmp_path / "rulesets"
    shutil.copytree(RULESETS, target, ignore=shutil.ignore_patterns("examples"))
    return target


def _replace(path: Path, text: str) -> None:
    """Write a file as editors do, by renaming a new one over it (so reloads are counted once)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _wait(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_reload_under_load_never_fails_a_request(tmp_path: Path) -> None:
    rules = _copy_rulesets(tmp_path)
    acme = rules / "contracts" / "acme.pricing"
    original = acme.read_text()
    s = Server(_serve.Service([str(rules)], poll_seconds=0.05))
    s.service.start_watching()
    old = s.client.get("/readyz").json()["version"]
    stop = threading.Event()
    seen: list[tuple[int, str, str]] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=s.url, timeout=10) as c:
            for _ in range(5000):  # bounded, even if the test never says stop
                if stop.is_set():
                    return
                r = c.post("/v1/rate?contract=acme&explain=false", content=json.dumps(ACME))
                total = r.json().get("total", "") if r.status_code == 200 else r.text
                with lock:
                    seen.append((r.status_code, r.headers.get(_serve.VERSION_HEADER, ""), total))

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        _wait(lambda: len(seen) > 40)
        _replace(acme, original.replace("overage 0.09 per user", "overage 0.10 per user"))
        _wait(lambda: s.client.get("/readyz").json()["version"] != old)
        new = s.client.get("/readyz").json()["version"]
        count = len(seen)
        _wait(lambda: len(seen) > count + 40)
        _replace(acme, original.replace("term 2026", "term  2026 oops"))  # a syntax error
        _wait(lambda: s.client.get("/readyz").json()["last_reload"]["ok"] is False)
        count = len(seen)
        _wait(lambda: len(seen) > count + 40)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        ready = s.client.get("/readyz").json()
        metrics = s.client.get("/metrics").text
        s.close()
    assert all(status == 200 for status, _, _ in seen), [x for x in seen if x[0] != 200][:3]
    # 1250 users over the allowance at 0.09, then at 0.10: 112.50, then 125.00.
    totals = {old: ACME_TOTAL, new: "1404.00"}
    assert {v for _, v, _ in seen} == {old, new}
    assert all(totals[v] == total for _, v, total in seen)
    # The broken edit left the last good ruleset serving, and said why.
    assert ready["version"] == new
    found = [(d["path"], d["code"], d["line"]) for d in ready["last_reload"]["diagnostics"]]
    assert (str(acme), "E100", 4) in found
    assert 'pricing_reloads_total{result="ok"} 1' in metrics
    assert 'pricing_reloads_total{result="error"} 1' in metrics
    assert "pricing_last_reload_ok 0" in metrics


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_cli_serves_and_reloads_on_sighup(tmp_path: Path, pricing_cmd: str) -> None:
    rules = _copy_rulesets(tmp_path)
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    proc = subprocess.Popen(
        [
            pricing_cmd,
            "serve",
            str(rules),
            "--port",
            "0",
            "--poll-seconds",
            "3600",
            "--token-file",
            str(token),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving sha256:") and "http://127.0.0.1:" in first
        url = first.split(" on ")[1].strip().rstrip("/")
        auth = {"Authorization": "Bearer t0ken"}
        with httpx.Client(base_url=url, timeout=10, headers=auth) as c:
            _wait(lambda: _answers(c))
            old = c.get("/readyz").json()["version"]
            acme = rules / "contracts" / "acme.pricing"
            acme.write_text(acme.read_text().replace("0.09 per user", "0.10 per user"))
            time.sleep(0.05)
            assert c.get("/readyz").json()["version"] == old  # no polling for an hour
            proc.send_signal(signal.SIGHUP)
            _wait(lambda: c.get("/readyz").json()["version"] != old)
            r = c.post("/v1/rate?contract=acme", content=json.dumps(ACME))
            assert r.json()["total"] == "1404.00"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def _answers(client: Any) -> bool:
    try:
        return bool(client.get("/healthz").status_code == 200)
    except httpx.TransportError:
        return False


def test_cli_reports_a_ruleset_with_errors(tmp_path: Path, pricing_cmd: str) -> None:
    bad = tmp_path / "bad.pricing"
    bad.write_text("plan p {\n")
    proc = subprocess.run(
        [pricing_cmd, "serve", str(bad), "--port", "0"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "error[E103]" in proc.stderr


def test_version_is_a_content_hash() -> None:
    a = _serve.ruleset_version([("a.pricing", b"x")])
    assert a == _serve.ruleset_version([("a.pricing", b"x")])
    assert a != _serve.ruleset_version([("a.pricing", b"y")])
    assert a != _serve.ruleset_version([("b.pricing", b"x")])


def test_cli_names_the_extra_when_starlette_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pricing_dsl._cli import main

    monkeypatch.setitem(sys.modules, "pricing_dsl._serve", None)  # import fails
    assert main(["serve", str(RULESETS)]) == 2
    assert "pip install 'pricing-dsl[serve]'" in capsys.readouterr().err
