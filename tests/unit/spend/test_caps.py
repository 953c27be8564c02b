"""Cap lines and the [spend] settings: validation, conversion, and what the pipeline drops in."""

import pytest
from pydantic import ValidationError

from sluicegate.spend.caps import CapLine, CapSettings, LeaseSettings, SpendSettings
from sluicegate.spend.money import MAX_NUSD


def test_cap_line_normalises_thresholds() -> None:
    line = CapLine("key", "k1", "acme", "day", 100, thresholds=(100, 50, 50, 80))
    assert line.thresholds == (50, 80, 100)
    assert line.enforced and not line.clamps
    assert CapLine("key", "k1", "acme", "day", 100, on_insufficient="clamp").clamps
    assert not CapLine("key", "k1", "acme", "day", 100, mode="monitor", on_insufficient="clamp").clamps


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit_nusd": -1}, "limit_nusd"),
        ({"limit_nusd": MAX_NUSD + 1}, "limit_nusd"),
        ({"limit_nusd": True}, "limit_nusd"),
        ({"entity_id": ""}, "entity id"),
        ({"level": "org", "entity_id": "other"}, "org cap"),
        ({"thresholds": (0,)}, "percents"),
        ({"thresholds": tuple(range(1, 18))}, "at most 16"),
    ],
)
def test_cap_line_refuses(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"level": "key", "entity_id": "k1", "org_id": "acme", "window": "day", "limit_nusd": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CapLine(**args)  # type: ignore[arg-type]


def test_settings_from_a_toml_like_mapping() -> None:
    s = SpendSettings.model_validate(
        {
            "backend": "redis",
            "thresholds": [90, 50],
            "lease": {"enabled": True},
            "default_price": {"input_usd_per_mtok": "10", "output_usd_per_mtok": 30},
            "price_overrides": {"mock-gpt": {"input_usd_per_mtok": 0.1, "output_usd_per_mtok": "0.2"}},
            "caps": [
                {"level": "org", "id": "acme", "window": "month", "limit_usd": "500.00"},
                {"level": "key", "id": "k1", "org": "acme", "window": "day", "limit_usd": 2.5, "thresholds": [10]},
                {"level": "user", "id": "u1", "org": "acme", "limit_usd": "1", "mode": "monitor"},
            ],
        }
    )
    org, key, user = s.lines()
    assert org == CapLine("org", "acme", "acme", "month", 500_000_000_000, thresholds=(50, 90))
    assert key.limit_nusd == 2_500_000_000 and key.thresholds == (10,) and key.window == "day"
    assert user.mode == "monitor" and user.window == "month"
    assert str(s.price_overrides["mock-gpt"].input_usd_per_mtok) == "0.1"  # read from repr, not binary


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"caps": [{"level": "key", "id": "k", "limit_usd": "1"}]}, "needs `org`"),
        ({"caps": [{"level": "org", "id": "a", "org": "b", "limit_usd": "1"}]}, "must equal"),
        ({"caps": [{"level": "org", "id": "a", "limit_usd": "10000000"}]}, "at most"),
        ({"caps": [{"level": "org", "id": "a", "limit_usd": "0.0000000001"}]}, "9 decimals"),
        ({"caps": [{"level": "org", "id": "a", "limit_usd": "1"}] * 2}, "two caps"),
        ({"backend": "memcached"}, "backend"),
        ({"unknown": 1}, "unknown"),
        ({"lease": {"ttl_s": 1, "sync_interval_s": 1}}, "third"),
        ({"thresholds": [0]}, "percents"),
    ],
)
def test_settings_refuse(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SpendSettings.model_validate(data)


def test_settings_are_frozen_and_have_safe_defaults() -> None:
    s = SpendSettings()
    assert s.backend == "local" and s.on_redis_error == "fail_closed" and s.default_price is None
    assert s.reservation_ttl_s > 900  # longer than the upstream's default total timeout
    assert not s.lease.enabled and LeaseSettings().requests_per_slice >= 20
    with pytest.raises(ValidationError):
        s.backend = "redis"  # type: ignore[misc]
    assert CapSettings(level="org", id="a", limit_usd="1").line().thresholds == (50, 80, 100)
