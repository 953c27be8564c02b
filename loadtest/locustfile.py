"""Locust scenarios for sluicegate: plain chat, streamed chat, prompts full of PII, several tenants,
and a budget that runs out.

`loadtest/run.py` starts everything and runs this file headless; it can also be run by hand against
any sluicegate (`locust -f loadtest/locustfile.py -H http://127.0.0.1:8080`, with the variables
below set). Every scenario checks its answers, not only their status:

- `PlainChat`: a chat completion; 200 with a non-empty reply and usage.
- `StreamChat`: the same streamed; the whole SSE stream is read (its response time is the whole
  stream's), must end with `data: [DONE]` and carry no error event; with the mock provider the
  reply must be exactly the 80 characters asked for.
- `PiiChat`: prompts full of planted PII and secrets (fresh values every request), streamed and not;
  the reply must never hold a planted value. With the mock provider the model is told to echo the
  request it received, so a value that reached the provider, or survived the response scan, shows.
  A 400 `content_blocked` (a `block` policy) passes: nothing leaked.
- `TenantChat`: several keys (organizations, workspaces, users), taken in turn request by request;
  statistics per tenant.
- `BudgetChat`: a key whose cap pays for exactly `LOADTEST_BUDGET_REQUESTS` requests. Successes are
  counted against that number; every 402 must say the cap could not pay for one more request
  (spent + reserved + requested > limit), and no request started after the first 402 may succeed.
- `LimitChat`: a key under a rate limit of `LOADTEST_LIMIT_REQUESTS` requests per
  `LOADTEST_LIMIT_WINDOW_S` seconds, called far above it. Every answer is a 200 with the limit
  headers, or sluicegate's own 429 (`gateway_rate_limit_exceeded`, `x-sluicegate-limit`,
  `retry-after-ms`, which the user then waits, as the SDKs do), its own line in the statistics; the
  most admissions seen inside one window (sent and answered within it) is counted, and must not
  pass the limit.

Variables (all optional but the key):

    LOADTEST_KEY              the gateway key of the plain, stream and PII scenarios
    LOADTEST_TENANT_KEYS      name=key,name=key,...  (default: LOADTEST_KEY as one tenant)
    LOADTEST_BUDGET_KEY       the key of the budget scenario (unset: the scenario fails every request)
    LOADTEST_BUDGET_REQUESTS  how many requests its cap pays for
    LOADTEST_LIMIT_KEY        the key of the rate-limit scenario
    LOADTEST_LIMIT_REQUESTS   its limit, requests per window
    LOADTEST_LIMIT_WINDOW_S   the window, seconds
    LOADTEST_MODEL            model name (default mock-gpt)
    LOADTEST_MOCK             1: the model is sluicegate's mock provider, knobs may be appended (default 1)
    LOADTEST_WAIT_S           pause between a user's requests, seconds (default 0)
    LOADTEST_SUMMARY          where to write the scenarios' own counts (JSON) when the run ends
"""

from __future__ import annotations

import itertools
import json
import os
import random
import string
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

KEY = os.environ.get("LOADTEST_KEY", "")
MODEL = os.environ.get("LOADTEST_MODEL", "mock-gpt")
MOCK = os.environ.get("LOADTEST_MOCK", "1") == "1"
WAIT_S = float(os.environ.get("LOADTEST_WAIT_S", "0"))
BUDGET_KEY = os.environ.get("LOADTEST_BUDGET_KEY", "")
BUDGET_REQUESTS = int(os.environ.get("LOADTEST_BUDGET_REQUESTS", "0"))
# Leases on several instances: near the cap one instance may refuse while another still holds an
# unused slice (over-blocking, never overspending: docs/configuration.md): a success after another
# instance's first 402 is then expected, and counted, not failed. The spend stays exact either way.
LATE_SUCCESSES_OK = os.environ.get("LOADTEST_LEASED_INSTANCES") == "1"
LIMIT_KEY = os.environ.get("LOADTEST_LIMIT_KEY", "")
LIMIT_REQUESTS = int(os.environ.get("LOADTEST_LIMIT_REQUESTS", "0"))
LIMIT_WINDOW_S = float(os.environ.get("LOADTEST_LIMIT_WINDOW_S", "0"))
PATH = "/v1/chat/completions"

# With the mock: 10 deltas of 4 characters = 10 output tokens, so `max_tokens = 10` reserves exactly
# what the request costs (the budget scenario depends on it); 20 deltas for streams.
PLAIN_KNOBS = "@chunks=10,chunk_size=4"
STREAM_KNOBS = "@chunks=20,chunk_size=4"
STREAM_CHARS = 80


def model(knobs: str) -> str:
    return MODEL + knobs if MOCK else MODEL


def tenants() -> list[tuple[str, str]]:
    raw = os.environ.get("LOADTEST_TENANT_KEYS", "")
    pairs = [item.split("=", 1) for item in raw.split(",") if "=" in item]
    return [(name.strip(), key.strip()) for name, key in pairs] or [("default", KEY)]


# ── what the scenarios count beyond locust's statistics ──────────────────────────────────────────

COUNTS: dict[str, Any] = {
    "pii_checked": 0,
    "pii_blocked": 0,
    "pii_leaks": 0,
    "pii_leaked_types": {},
    "pii_redaction_seen": 0,
    "budget_requests": BUDGET_REQUESTS,
    "budget_successes": 0,
    "budget_refused": 0,
    "budget_premature_402": 0,
    "budget_late_successes": 0,
    "budget_other": 0,
    "budget_successes_at_first_402": None,
    "budget_limit_nusd": None,
    "budget_request_nusd": None,
    "stream_checked": 0,
    "limit_requests": LIMIT_REQUESTS,
    "limit_window_s": LIMIT_WINDOW_S,
    "limit_admitted": 0,
    "limit_refused": 0,
    "limit_most_in_window": 0,
}
_limit_calls: list[tuple[float, float]] = []  # (sent, answered) of every admitted rate-limit call
_first_402_at: float | None = None


def entry_row(entry: Any) -> dict[str, Any]:
    return {
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.total_rps,
        "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else 0,
        "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else 0,
    }


@events.quitting.add_listener
def write_summary(environment: Any, **_: Any) -> None:
    """The scenarios' counts and the final statistics (locust's CSV misses the last second)."""
    path = os.environ.get("LOADTEST_SUMMARY")
    if _limit_calls and LIMIT_WINDOW_S:
        COUNTS["limit_most_in_window"] = most_in_a_window(_limit_calls, LIMIT_WINDOW_S)
    if path:
        stats = environment.stats
        rows = [entry_row(e) for e in sorted(stats.entries.values(), key=lambda e: e.name)]
        rows.append({**entry_row(stats.total), "name": "Aggregated"})
        Path(path).write_text(json.dumps({**COUNTS, "stats": rows}, indent=2, sort_keys=True) + "\n")


# ── helpers ──────────────────────────────────────────────────────────────────────────────────────


def most_in_a_window(calls: list[tuple[float, float]], window: float) -> int:
    """The most calls (sent, answered) wholly inside one window that starts at a send: those were
    surely admitted inside it."""
    calls = sorted(calls)
    most = 0
    for i, (start, _) in enumerate(calls):
        end = start + window
        inside = 0
        for sent, answered in calls[i:]:
            if sent > end:
                break
            inside += answered <= end
        most = max(most, inside)
    return most


def sse_events(body: bytes) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    out = []
    for block in body.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out


def stream_text(events_: list[str]) -> tuple[str, str | None]:
    """The reply assembled from a chat completion stream, and the first problem found (or None)."""
    if not events_ or events_[-1] != "[DONE]":
        return "", "the stream did not end with data: [DONE]"
    parts = []
    for data in events_[:-1]:
        try:
            chunk = json.loads(data)
        except ValueError:
            return "", "an event that is not JSON"
        if "error" in chunk:
            return "", f"an error event: {str(chunk['error'])[:200]}"
        for choice in chunk.get("choices") or []:
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts), None


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def planted() -> dict[str, str]:
    """Fresh PII and secrets of the kinds the scanner knows, all valid (checksums included)."""
    rnd = random.Random()
    alnum = string.ascii_letters + string.digits
    card = "4" + "".join(rnd.choice(string.digits) for _ in range(14))
    return {
        "EMAIL": f"{''.join(rnd.choices(string.ascii_lowercase, k=8))}.{rnd.randrange(10**6)}@example.org",
        "US_SSN": f"{rnd.randrange(100, 600)}-{rnd.randrange(10, 99)}-{rnd.randrange(1000, 9999)}",
        "CREDIT_CARD": card + luhn_digit(card),
        "IBAN": "GB82WEST12345698765432",
        "AWS_ACCESS_KEY_ID": "AKIA" + "".join(rnd.choices(string.ascii_uppercase + "234567", k=16)),
        "GITHUB_TOKEN": "ghp_" + "".join(rnd.choices(alnum, k=36)),
        "IP_ADDRESS": f"203.0.113.{rnd.randrange(1, 255)}",
    }


def pii_prompt(values: dict[str, str]) -> str:
    return (
        f"Customer record: email {values['EMAIL']}, SSN {values['US_SSN']}, card {values['CREDIT_CARD']}, "
        f"IBAN {values['IBAN']}, last login from {values['IP_ADDRESS']}. The deploy script has "
        f"AWS key {values['AWS_ACCESS_KEY_ID']} and token {values['GITHUB_TOKEN']}. Repeat all of this back."
    )


# ── scenarios ────────────────────────────────────────────────────────────────────────────────────


class Chat(FastHttpUser):
    abstract = True
    wait_time = constant(WAIT_S)
    network_timeout = 60.0
    connection_timeout = 10.0
    key = KEY

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def plain(self, name: str) -> None:
        body = {"model": model(PLAIN_KNOBS), "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}
        with self.client.post(PATH, json=body, headers=self.headers(), name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
                return
            try:
                reply = r.json()
                ok = bool(reply["choices"][0]["message"]["content"]) and reply["usage"]["total_tokens"] > 0
            except (ValueError, KeyError, IndexError, TypeError):
                ok = False
            if not ok:
                r.failure("not a chat completion with a reply and usage")

    def stream(self, name: str) -> None:
        body = {
            "model": model(STREAM_KNOBS),
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 20,
            "stream": True,
        }
        with self.client.post(PATH, json=body, headers=self.headers(), name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
                return
            text, problem = stream_text(sse_events(r.content or b""))
            if problem is None and MOCK and len(text) != STREAM_CHARS:
                problem = f"the reply has {len(text)} characters, not {STREAM_CHARS}"
            if problem is None and not MOCK and not text:
                problem = "an empty reply"
            COUNTS["stream_checked"] += 1
            if problem:
                r.failure(problem)


class PlainChat(Chat):
    weight = 3

    @task
    def chat(self) -> None:
        self.plain("plain")


class StreamChat(Chat):
    weight = 3

    @task
    def chat(self) -> None:
        self.stream("stream")


class PiiChat(Chat):
    weight = 2

    @task
    def chat(self) -> None:
        self.pii(stream=False)

    @task
    def chat_stream(self) -> None:
        self.pii(stream=True)

    def pii(self, *, stream: bool) -> None:
        values = planted()
        # echo: the mock replies with the request it received; a small chunk_size cuts every value
        # across several stream events, so the response scan has to join them.
        knobs = "@echo=1,chunk_size=7" if stream else "@echo=1"
        body = {"model": model(knobs), "messages": [{"role": "user", "content": pii_prompt(values)}], "stream": stream}
        name = "pii stream" if stream else "pii"
        with self.client.post(PATH, json=body, headers=self.headers(), name=name, catch_response=True) as r:
            raw = r.content or b""
            if r.status_code == 400 and b"content_blocked" in raw:
                COUNTS["pii_blocked"] += 1
                return
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {raw[:200]!r}")
                return
            if stream:
                text, problem = stream_text(sse_events(raw))
                if problem:
                    r.failure(problem)
                    return
            else:
                try:
                    text = r.json()["choices"][0]["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError):
                    r.failure("not a chat completion")
                    return
            COUNTS["pii_checked"] += 1
            decoded = raw.decode("utf-8", errors="replace")
            leaked = sorted(kind for kind, value in values.items() if value in text or value in decoded)
            if leaked:
                COUNTS["pii_leaks"] += 1
                for kind in leaked:
                    COUNTS["pii_leaked_types"][kind] = COUNTS["pii_leaked_types"].get(kind, 0) + 1
                r.failure("planted values came back: " + ", ".join(leaked))  # the types, never the values
            elif MOCK and "EMAIL" not in text:  # [REDACTED:EMAIL] or a pseudonym [EMAIL:…]
                r.failure("the echoed request shows no redaction at all")
            else:
                COUNTS["pii_redaction_seen"] += 1


TENANTS = itertools.cycle(tenants())


class TenantChat(Chat):
    """Each request with the next tenant's key, so every tenant has traffic at any user count."""

    weight = 2

    @task
    def chat(self) -> None:
        tenant, self.key = next(TENANTS)
        self.plain(f"tenant {tenant}")


class BudgetChat(Chat):
    """Spends a cap that pays for exactly BUDGET_REQUESTS requests, then must meet 402s."""

    fixed_count = 2
    key = BUDGET_KEY

    @task
    def chat(self) -> None:
        global _first_402_at
        started = time.monotonic()
        body = {"model": model(PLAIN_KNOBS), "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}
        with self.client.post(PATH, json=body, headers=self.headers(), name="budget", catch_response=True) as r:
            if r.status_code == 200:
                COUNTS["budget_successes"] += 1
                if _first_402_at is not None and started > _first_402_at:
                    COUNTS["budget_late_successes"] += 1
                    if not LATE_SUCCESSES_OK:
                        r.failure("a success after the cap was reached")
                elif BUDGET_REQUESTS and COUNTS["budget_successes"] > BUDGET_REQUESTS:
                    r.failure(f"success {COUNTS['budget_successes']} on a cap paying for {BUDGET_REQUESTS}")
                return
            if r.status_code != 402:
                COUNTS["budget_other"] += 1
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
                return
            r.request_meta["name"] = "budget 402"  # expected: its own line in the statistics, not a failure
            r.success()
            COUNTS["budget_refused"] += 1
            if _first_402_at is None:
                _first_402_at = time.monotonic()
                COUNTS["budget_successes_at_first_402"] = COUNTS["budget_successes"]
            try:
                h = r.headers
                limit, spent = int(h["x-sluicegate-cap-limit-nusd"]), int(h["x-sluicegate-cap-spent-nusd"])
                reserved, requested = (
                    int(h["x-sluicegate-cap-reserved-nusd"]),
                    int(h["x-sluicegate-cap-requested-nusd"]),
                )
            except (KeyError, ValueError, TypeError):
                r.failure("a 402 without the x-sluicegate-cap-* figures")
                return
            COUNTS["budget_limit_nusd"], COUNTS["budget_request_nusd"] = limit, requested
            if spent + reserved + requested <= limit:
                COUNTS["budget_premature_402"] += 1
                r.failure("a 402 while the cap could still pay for the request")
        if COUNTS["budget_refused"] > 20:
            time.sleep(0.05)  # the cap is spent: keep checking, without flooding the gateway with 402s


class LimitChat(Chat):
    """Calls far above a rate limit: 200s with the limit headers, or sluicegate's own 429s."""

    fixed_count = 4
    key = LIMIT_KEY

    @task
    def chat(self) -> None:
        sent = time.monotonic()
        body = {"model": model(PLAIN_KNOBS), "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}
        with self.client.post(PATH, json=body, headers=self.headers(), name="limits", catch_response=True) as r:
            answered = time.monotonic()
            headers = r.headers or {}
            if r.status_code == 200:
                if headers.get("x-ratelimit-limit-requests") != str(LIMIT_REQUESTS):
                    r.failure(f"x-ratelimit-limit-requests {headers.get('x-ratelimit-limit-requests')!r}")
                    return
                COUNTS["limit_admitted"] += 1
                _limit_calls.append((sent, answered))
                return
            if r.status_code != 429:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
                return
            r.request_meta["name"] = "limits 429"  # expected: its own line in the statistics, not a failure
            try:
                code = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code != "gateway_rate_limit_exceeded" or not headers.get("x-sluicegate-limit"):
                r.failure(f"a 429 that is not sluicegate's: {(r.text or '')[:200]}")
                return
            if not headers.get("retry-after-ms"):
                r.failure("a 429 without retry-after-ms")
                return
            r.success()
            COUNTS["limit_refused"] += 1
        # As the SDKs do: wait what retry-after-ms says (the demand stays far above the limit).
        time.sleep(min(float(headers.get("retry-after-ms", "0")) / 1000, LIMIT_WINDOW_S or 1.0))
