import json
import logging
import threading

import pytest

from lib import log
from lib.log import REDACTED, JsonFormatter, redact, register_secret


def render(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> dict:
    record = logging.LogRecord("integration.test", logging.INFO, __file__, 1, msg, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))


def test_registered_secret_is_masked_in_message_args_and_extras() -> None:
    register_secret("vca_supersecret_token_1")
    line = render("token is %s", "vca_supersecret_token_1", note="x vca_supersecret_token_1 y")
    assert "vca_supersecret_token_1" not in json.dumps(line)
    assert line["msg"] == f"token is {REDACTED}"
    assert line["note"] == f"x {REDACTED} y"


def test_secret_in_exception_traceback_is_masked() -> None:
    register_secret("client-secret-for-traceback")
    try:
        raise ValueError("boom client-secret-for-traceback")
    except ValueError as exc:
        line = render("failed", exc=exc)
    assert "client-secret-for-traceback" not in json.dumps(line)
    assert REDACTED in line["exc"]


@pytest.mark.parametrize(
    "field", ["access_token", "client_secret", "authorization", "sealed_token", "code"]
)
def test_secret_looking_fields_are_masked_whatever_their_value(field: str) -> None:
    line = render("x", **{field: "unregistered-value"})
    assert line[field] == REDACTED


def test_bearer_credentials_are_masked_even_unregistered() -> None:
    assert redact("Authorization: Bearer abcdefghijklmnop") == f"Authorization: Bearer {REDACTED}"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_longest_secret_masked_whole() -> None:
    register_secret("overlapping-secret")
    register_secret("overlapping-secret-longer")
    assert redact("overlapping-secret-longer") == REDACTED


def test_line_is_single_json_object() -> None:
    text = JsonFormatter().format(
        logging.LogRecord("integration.t", logging.INFO, __file__, 1, "a\nb", (), None)
    )
    assert "\n" not in text
    assert json.loads(text)["msg"] == "a\nb"


def test_sealed_values_are_masked() -> None:
    from lib.crypto import EncryptionKey, Keyring

    sealed = Keyring(EncryptionKey(key_id="k1", key=bytes(32))).seal("x", aad="a")
    assert redact(f"value={sealed}!") == f"value={REDACTED}!"


def test_set_level_applies_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    from lib.log import configure, get_logger, set_level

    configure()
    try:
        set_level("WARNING")
        get_logger("t").info("quiet-info-line")
        get_logger("t").warning("loud-warning-line")
    finally:
        set_level("INFO")
    out = capsys.readouterr().out
    assert "quiet-info-line" not in out
    assert "loud-warning-line" in out


def test_installation_secrets_are_bounded_and_configuration_secrets_stay() -> None:
    # A warm instance serving thousands of installations keeps a bounded set: the oldest
    # installation secrets leave, configuration secrets never do, and recent use renews.
    register_secret("configuration-secret-that-stays", permanent=True)
    register_secret("token-used-first-and-again")
    for n in range(log._MAX_RECENT + 50):
        register_secret(f"installation-token-{n:06d}")
        if n % 100 == 0:
            register_secret("token-used-first-and-again")  # its request is still logging
    assert len(log._recent) == log._MAX_RECENT
    assert redact("configuration-secret-that-stays") == REDACTED
    assert redact("token-used-first-and-again") == REDACTED
    newest = f"installation-token-{log._MAX_RECENT + 49:06d}"
    assert redact(newest) == REDACTED
    assert redact("installation-token-000000") == "installation-token-000000"


# -- issue 13: ISO-8601 UTC timestamps, and the request's fields on every line ------------


def test_timestamps_are_iso_8601_utc_to_the_millisecond() -> None:
    import re

    record = logging.LogRecord("integration.test", logging.INFO, __file__, 1, "x", (), None)
    record.created = 1_796_178_830.4567
    line = json.loads(JsonFormatter().format(record))
    assert line["ts"] == "2026-12-02T02:33:50.456Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", render("now")["ts"])


def test_bound_fields_are_on_every_line_until_unbound() -> None:
    assert "request_id" not in render("before")
    token = log.bind(request_id="iad1::abc", path="/webhook")
    try:
        inner = log.bind(configuration_id="icfg_1")
        line = render("x")
        assert (line["request_id"], line["configuration_id"]) == ("iad1::abc", "icfg_1")
        log.unbind(inner)
        line = render("y", note=1)
        assert (line["request_id"], line["path"], line["note"]) == ("iad1::abc", "/webhook", 1)
        assert "configuration_id" not in line
        # An explicit extra wins over a bound field of the same name.
        assert render("z", path="/other")["path"] == "/other"
    finally:
        log.unbind(token)
    assert "request_id" not in render("after")


def test_bound_fields_follow_the_fan_out_and_stay_in_their_own_request() -> None:
    from lib.provisioning.fanout import fan_out

    def lines(request_id: str) -> list[str]:
        token = log.bind(request_id=request_id)
        try:
            return fan_out(lambda _: render("work")["request_id"], range(4), 4)
        finally:
            log.unbind(token)

    results: dict[str, list[str]] = {}
    threads = [
        threading.Thread(target=lambda r=r: results.__setitem__(r, lines(r))) for r in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"a": ["a"] * 4, "b": ["b"] * 4}


def test_bound_secrets_are_still_redacted() -> None:
    register_secret("bound-secret-value-1234")
    token = log.bind(request_id="x bound-secret-value-1234", authorization="anything")
    try:
        line = render("m")
    finally:
        log.unbind(token)
    assert "bound-secret-value-1234" not in json.dumps(line)
    assert line["authorization"] == REDACTED
