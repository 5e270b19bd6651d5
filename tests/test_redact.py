"""Redaction: secrets never leave the box, and ordinary text stays readable."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from healthcheck import redact
from healthcheck.config import Config, RedactConfig, SupervisorConfig
from healthcheck.redact import MARKER, Redactor, is_secret_name

from secrets_corpus import (
    CONTEXT_SECRETS,
    EXPECTED_KIND,
    FAKE_PRIVATE_KEY,
    FAKE_SECRETS,
    LOOKALIKE_FAMILIES,
    SECRET_ENV,
    SECRET_FAMILIES,
)

# Realistic places a secret turns up. None of them says FAKE, so "FAKE" in an output is a leak.
CONTEXTS = {
    "log line": "2026-11-28 10:00:00,123 INFO loaded credential {s} from cache",
    "env line": "MY_SETTING={s}",
    "json": None,  # built with json.dumps below: the value escaped as JSON does it
    "url": "https://example.invalid/api/v1?page=2&value={s}&sort=asc",
    "curl": "curl -sS -X POST -H 'X-Custom: {s}' https://example.invalid/upload",
    "traceback": (
        "Traceback (most recent call last):\n"
        '  File "/app/main.py", line 12, in <module>\n'
        '    client = Client(credential="{s}")\n'
        "ValueError: invalid credential {s}"
    ),
}


def in_context(context: str, secret: str) -> str:
    if context == "json":
        return json.dumps({"settings": {"value": secret, "retries": 3}})
    return CONTEXTS[context].format(s=secret)


@pytest.fixture
def r() -> Redactor:
    return Redactor()


@pytest.mark.parametrize("context", sorted(CONTEXTS))
@pytest.mark.parametrize("name", sorted(FAKE_SECRETS))
def test_known_formats_are_masked_in_any_context(r: Redactor, name: str, context: str) -> None:
    text = in_context(context, FAKE_SECRETS[name])
    out = r.text(text)
    assert "FAKE" not in out  # not the secret, not a prefix of it, not a piece of it
    assert f"[redacted:{EXPECTED_KIND[name]}]" in out
    assert out.count("\n") == text.count("\n")
    assert r.text(out) == out


@pytest.mark.parametrize("name", sorted(CONTEXT_SECRETS))
def test_secrets_given_away_by_their_context(r: Redactor, name: str) -> None:
    line, secret = CONTEXT_SECRETS[name]
    out = r.text(line)
    assert secret not in out
    assert "FAKE" not in out
    assert MARKER in out
    assert r.text(out) == out


# What issue 12 listed as leaking, exactly (test_exact_masking runs these too).
ISSUE_12_LEAKS = [
    # the whole value, not cut at & ; , { ( [
    ("password=Sup3r;Secret!2024", "password=[redacted]"),
    ("password=a&b,c{d(e[f", "password=[redacted]"),
    ("Server=db;Password=Secr3t;Database=app", "Server=db;Password=[redacted];Database=app"),
    ("pw=abc,user=jane", "pw=[redacted],user=jane"),
    ("login(password=Sup3r(x)y)", "login(password=[redacted])"),
    # names the keyword rule missed
    ("MYSQL_PWD=abcdef123", "MYSQL_PWD=[redacted]"),
    ("DBPWD=abcdef123", "DBPWD=[redacted]"),
    ('passwd := "abc123def"', 'passwd := "[redacted]"'),
    ('password "abc123def"', 'password "[redacted]"'),
    ("github_oauth = abc123def456", "github_oauth = [redacted]"),
    ('login(password="hunter2xyz")', 'login(password="[redacted]")'),
    # a keyword, a blank and a random-looking value
    ("my api key 8fA3kLq92ZxP0wQe7vB", "my api key [redacted]"),
    # a fake token made of short words is still a token (scripts/sample_reports.py's)
    ("token hf_PastedTokenNotRealAbCdEfGhIjKlMnOpQr", "token [redacted:huggingface-token]"),
    # URL passwords with a blank; command lines
    ("mongodb://admin:my pass@db:27017/x", "mongodb://admin:[redacted]@db:27017/x"),
    ("mysql -uroot -pS3cret db", "mysql -uroot -p[redacted] db"),
    ("sshpass -p S3cret ssh host", "sshpass -p [redacted] ssh host"),
    ("docker login -u me -p S3cret r.invalid", "docker login -u me -p [redacted] r.invalid"),
    ("mysql --password S3cret", "mysql --password [redacted]"),
    ("curl --user kevin:'pRf7vG2h1L8nQkW9' -X GET", "curl --user kevin:'[redacted]' -X GET"),
    # pairs, dashes and echoes found in public scanners' test data
    ('{ "AccountKey", "x8jqRVtXUW+hgIhR/dFw==" }', '{ "AccountKey", "[redacted]" }'),
    ("twilio token - 'AC1b3f0bddbb6887d68d8454e'", "twilio token - '[redacted]'"),
    ("user 'jane' pass 'S3cr3t-pw'", "user 'jane' pass '[redacted]'"),
    (
        "password=hunter2abc, then hunter2abc again",
        "password=[redacted], then [redacted] again",
    ),
    # source code: comparisons, backticks, C# strings, arrays, constructors and calls
    ('if (api_key == "m{h}o)p$n<b>") {', 'if (api_key == "[redacted]") {'),
    ('if ("m{h}o)p$n<b>" !== password) {', 'if ("[redacted]" !== password) {'),
    ("aws_secret_access_key := `Zx9-Qw8/Er7`", "aws_secret_access_key := `[redacted]`"),
    ('password = @"Zx9-Qw8/Er7";', 'password = @"[redacted]";'),
    ('char secrete[25] = "Zx9-Qw8/Er7";', 'char secrete[25] = "[redacted]";'),
    ('std::string secret("Zx9-Qw8/Er7");', 'std::string secret("[redacted]");'),
    ('secrete.assign("Zx9-Qw8/Er7",17);', 'secrete.assign("[redacted]",17);'),
    ("password = m{h}o)p$n<b>-_$#x", "password = [redacted]"),
    ("<td>password=S3cret</td>", "<td>password=[redacted]</td>"),
    # declarations and assignment operators of other languages (gitleaks' sample contexts)
    ('var apiToken string = "Zx9Qw8Er7Ty6"', 'var apiToken string = "[redacted]"'),
    ('val apiToken: String = "Zx9Qw8Er7Ty6"', 'val apiToken: String = "[redacted]"'),
    ('$apiToken .= "Zx9Qw8Er7Ty6"', '$apiToken .= "[redacted]"'),
    ('API_TOKEN ?= "Zx9Qw8Er7Ty6"', 'API_TOKEN ?= "[redacted]"'),
    ('API_TOKEN ::= "Zx9Qw8Er7Ty6"', 'API_TOKEN ::= "[redacted]"'),
    ("api_token: |\n  Zx9Qw8Er7Ty6", "api_token: |\n  [redacted]"),
    ("<apiToken>\n    Zx9Qw8Er7Ty6\n</apiToken>", "<apiToken>\n    [redacted]\n</apiToken>"),
    (
        '{"name": "api_token",\n "value": "Zx9Qw8Er7Ty6"}',
        '{"name": "api_token",\n "value": "[redacted]"}',
    ),
    (
        '<entry name="apiToken" value="Zx9Qw8Er7Ty6" />',
        '<entry name="apiToken" value="[redacted]" />',
    ),
    (
        'System.setProperty("API_TOKEN", "Zx9Qw8Er7Ty6")',
        'System.setProperty("API_TOKEN", "[redacted]")',
    ),
]


@pytest.mark.parametrize(
    "text,expected",
    [
        # variables with secret names
        ("VNC_PW=vncpass1", "VNC_PW=[redacted]"),
        ("export HF_TOKEN=abc123", "export HF_TOKEN=[redacted]"),
        ("MYSQL_ROOT_PASSWORD=rootpw", "MYSQL_ROOT_PASSWORD=[redacted]"),
        ("AWS_SECRET_ACCESS_KEY=abc/def+ghi=", "AWS_SECRET_ACCESS_KEY=[redacted]"),
        ("SENTRY_DSN=https://abc@o0.ingest.example.invalid/1", "SENTRY_DSN=[redacted]"),
        ("GITHUB_PAT=abcdef", "GITHUB_PAT=[redacted]"),
        ("PWD=hunter22", "PWD=[redacted]"),
        ("passwd: hunter2", "passwd: [redacted]"),
        ("x-api-key: abc123", "x-api-key: [redacted]"),
        ('VNC_PW="two words"', 'VNC_PW="[redacted]"'),
        ("password=${PW:-fallback}", "password=[redacted]"),
        # JSON, Python reprs, JSON escaped inside a string, XML
        ('{"user": "bob", "password": "p@ss w0rd"}', '{"user": "bob", "password": "[redacted]"}'),
        ("{'api_key': 'abc'}", "{'api_key': '[redacted]'}"),
        ('{\\"secret\\": \\"abc\\"}', '{\\"secret\\": \\"[redacted]\\"}'),
        ("<password>hunter2</password>", "<password>[redacted]</password>"),
        # URLs and connection strings: only the secret part goes
        (
            "http://127.0.0.1:8080/lab?token=abc123&x=1",
            "http://127.0.0.1:8080/lab?token=[redacted]&x=1",
        ),
        (
            "https://s3.invalid/o?X-Amz-Credential=AKIDFAKE0123&X-Amz-Signature=abcdef",
            "https://s3.invalid/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]",
        ),
        (
            "https://x.invalid/?access_token=abc&sig=def",
            "https://x.invalid/?access_token=[redacted]&sig=[redacted]",
        ),
        ("postgres://user:pw@db:5432/x", "postgres://user:[redacted]@db:5432/x"),
        ("redis://:s3cret@redis:6379/0", "redis://:[redacted]@redis:6379/0"),
        ("https://user:p@ss@host.invalid/", "https://user:[redacted]@host.invalid/"),
        ("amqp://guest:guest123@mq:5672/", "amqp://guest:[redacted]@mq:5672/"),
        ("Server=db;User Id=sa;Password=Secr3t;", "Server=db;User Id=sa;Password=[redacted];"),
        # authorization
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("authorization: token abc123", "authorization: token [redacted]"),
        (
            'headers={"Authorization": "Basic dXNlcjpwYXNz"}',
            'headers={"Authorization": "Basic [redacted]"}',
        ),
        ("Cookie: session=abc; theme=dark", "Cookie: [redacted]"),
        ("Set-Cookie: sid=abc; Path=/", "Set-Cookie: [redacted]"),
        ("got Bearer abcdef0123456789 from cache", "got Bearer [redacted] from cache"),
        # command lines
        ("curl -u admin:hunter22 https://x.invalid", "curl -u admin:[redacted] https://x.invalid"),
        ("x11vnc -passwd hunter22 -forever", "x11vnc -passwd [redacted] -forever"),
        (
            "jupyter lab --ServerApp.token=abc123 --port=8080",
            "jupyter lab --ServerApp.token=[redacted] --port=8080",
        ),
        ("vault login --token 's.abcdef123'", "vault login --token '[redacted]'"),
        # known formats keep their kind, not a prefix
        ("token=ghp_" + "A1" * 18, "token=[redacted:github-token]"),
        (
            "AKIAZ7Q4N2W8R5T1Y3U6 and AKIAZ7Q4N2W8R5T1Y3U6Q",
            "[redacted:aws-access-key-id] and AKIAZ7Q4N2W8R5T1Y3U6Q",
        ),
        *ISSUE_12_LEAKS,
    ],
)
def test_exact_masking(r: Redactor, text: str, expected: str) -> None:
    assert r.text(text) == expected
    assert r.text(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "TOKENIZERS_PARALLELISM=false",
        "CUDA_VERSION=12.4.1",
        "PYTHON_VERSION=3.10.12",
        "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/bin:/bin",
        "PWD=/root",
        "OLDPWD=/workspace",
        "SSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.42",
        "XAUTHORITY=/root/.Xauthority",
        "VNC_PASSWORDLESS=true",
        "OPEN_BUTTON_TOKEN=1",
        "JUPYTER_TOKEN=",
        'JUPYTER_TOKEN=""',
        "--ServerApp.token=''",
        "KEYBOARD_LAYOUT=us",
        "XKB_KEYMAP=de",
        "HF_TOKEN_PATH=/root/.cache/huggingface/token",
        "DB_PASSWORD_FILE=/run/secrets/db",
        "max_new_tokens=512",
        "PASSWORD_MIN_LENGTH=12",
        "SESSION_TIMEOUT=3600",
        "XDG_SESSION_TYPE=x11",
        "DESKTOP_SESSION=icewm",
        "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus",
        "SSH_PUBLIC_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 user@host",
        "GIT_AUTHOR_NAME=Jane Doe",
        "the token expired, please log in again",
        "Bearer authentication is required",
        "sshd[42]: Accepted password for root from 10.0.0.1 port 22 ssh2",
        "commit 3f2a9c1e0b7d4a6f8e5c2b1a0d9f8e7c6b5a4d3e",
        "KeyError: 'HF_TOKEN'",
        "docker run -u 1000:1000 image",
        "x11vnc -display :1 -rfbauth /root/.vnc/passwd -rfbport 5901",
        "nginx --ssl-key /etc/ssl/private/server.key",
        "x11vnc -passwd $VNC_PW",
        "password=${VNC_PW}",
        "Use --auth to enable it",
        "pip install scikit-learn sk-video-processing-toolkit",
        "Requirement already satisfied: torch==2.3.0 in /usr/local/lib/python3.10/dist-packages",
        "-rw-r--r-- 1 root root 4096 May  1 10:00 /workspace/model.safetensors",
        "http://127.0.0.1:8080/lab?page=2&sort=asc",
        "| HF_TOKEN | [redacted] |",
        "-----END PRIVATE KEY-----",
    ],
)
def test_ordinary_text_stays_readable(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def words(text: str) -> list[str]:
    return text.split()


SECRET_NAMES = words(
    "VNC_PW HF_TOKEN JUPYTER_TOKEN OPENAI_API_KEY AWS_SECRET_ACCESS_KEY SENTRY_DSN DB_PASSWORD"
    " MYSQL_ROOT_PASSWORD GITHUB_PAT apiKey accessToken X-Auth-Token NotebookApp.token"
    " COOKIE_SECRET SESSION_KEY PRIVATE_KEY MYSQLPASSWORD HFTOKEN PASSWORD2 PASS CREDENTIALS AUTH"
    " TOKEN_URL DISCORD_WEBHOOK_URL SECRET_KEY_BASE"
    " DB_PASSWORD_FILE"  # without a value, the name alone decides
)


@pytest.mark.parametrize(
    "name,value",
    [(name, None) for name in SECRET_NAMES]
    + [("PWD", "hunter22"), ("HF_TOKEN_PATH", "hf_notapath"), ("API_KEY", "12345")]
    + [("MAX_TOKENS", "many")],
)
def test_secret_names(name: str, value: str | None) -> None:
    assert is_secret_name(name, value) is True


NOT_SECRET_NAMES = words(
    "TOKENIZERS_PARALLELISM KEYBOARD_LAYOUT KEYMAP SSH_AUTH_SOCK XAUTHORITY VNC_PASSWORDLESS"
    " HOME PATH CUDA_VERSION GIT_AUTHOR_NAME KeyError PUBLIC_KEY STRIPE_PUBLISHABLE_KEY"
    " XDG_SESSION_ID DESKTOP_SESSION SUDO_ASKPASS OLDPWD"
    " AUTH_TYPE SECRET_NAME TOKEN_USER PASSWORD_POLICY PRIVATE_IP"  # about a secret, not one
)


@pytest.mark.parametrize(
    "name,value",
    [(name, None) for name in NOT_SECRET_NAMES]
    + [("VNC_PW", v) for v in ("", "true", '""', "Off", "none", " no ")]
    + [("OPEN_BUTTON_TOKEN", "1"), ("PWD", "/root"), ("DB_PASSWORD_FILE", "/run/secrets/db")]
    + [("HF_TOKEN_PATH", "/root/.cache/huggingface/token"), ("MAX_TOKENS", "512")]
    + [("SESSION_TIMEOUT", "3600"), ("num_keys", "3")],
)
def test_not_secret_names(name: str, value: str | None) -> None:
    assert is_secret_name(name, value) is False


def test_extra_name_patterns() -> None:
    extra = [re.compile("thing", re.IGNORECASE)]
    assert is_secret_name("MY_THING", "v", extra) is True
    assert is_secret_name("MY_THING", "v") is False
    assert is_secret_name("MY_THING", "true", extra) is False  # a switch stays a switch


def test_obj_masks_nested_data_and_keeps_its_shape(r: Redactor) -> None:
    data: dict[Any, Any] = {
        "env": {"HF_TOKEN": "abc123", "VNC_PASSWORDLESS": "true", "CUDA_VERSION": "12.4"},
        "lines": ["ok", "password=x1", "done"],
        "numbers": {"n": 3, "f": 1.5, "b": True, "none": None, 7: "seven"},
        "pair": ("plain", FAKE_SECRETS["github-classic"]),
        "vars": [
            {"name": "DB_PASSWORD", "value": "pw12"},
            {"name": "HOME", "value": "/root"},
        ],
        "mixed": [1, "VNC_PW=abc", {"api_key": "k", "count": 2}, []],
        "empty": {},
    }
    original = copy.deepcopy(data)
    assert r.obj(data) == {
        "env": {"HF_TOKEN": MARKER, "VNC_PASSWORDLESS": "true", "CUDA_VERSION": "12.4"},
        "lines": ["ok", "password=[redacted]", "done"],
        "numbers": {"n": 3, "f": 1.5, "b": True, "none": None, 7: "seven"},
        "pair": ("plain", "[redacted:github-token]"),
        "vars": [
            {"name": "DB_PASSWORD", "value": MARKER},
            {"name": "HOME", "value": "/root"},
        ],
        "mixed": [1, "VNC_PW=[redacted]", {"api_key": MARKER, "count": 2}, []],
        "empty": {},
    }
    assert data == original  # a copy, not an edit
    assert r.obj(r.obj(data)) == r.obj(data)


def test_obj_secret_key_masks_whole_value_even_multiline(r: Redactor) -> None:
    assert r.obj({"PRIVATE_KEY": "line one\nline two"}) == {"PRIVATE_KEY": "[redacted]\n[redacted]"}
    assert r.obj({"secret": ""}) == {"secret": ""}
    assert r.obj({"token": 12345}) == {"token": 12345}  # only strings are values to mask


def test_pem_block_spread_over_log_lines(r: Redactor) -> None:
    lines = ["starting sshd", *FAKE_PRIVATE_KEY.split("\n"), "done"]
    assert r.obj(lines) == [
        "starting sshd",
        "[redacted:private-key]",
        MARKER,
        MARKER,
        MARKER,
        MARKER,
        "done",
    ]
    assert r.obj({"tail": lines})["tail"][1:-1] == ["[redacted:private-key]"] + [MARKER] * 4


def test_pem_begin_without_end_masks_to_the_end(r: Redactor) -> None:
    lines = ["a line", "key: -----BEGIN RSA PRIVATE KEY-----", "MIIEpFAKEFAKE", "FAKEFAKE"]
    assert r.obj(lines) == ["a line", "key: [redacted:private-key]", MARKER, MARKER]


def test_pem_end_without_begin_masks_the_body_above(r: Redactor) -> None:
    lines = [
        "tail started mid-key",
        "FAKEFAKEFAKEFAKEFAKEFAKE+/FAKE",
        "FAKE==",
        "-----END PRIVATE KEY-----",
        "after the key",
    ]
    assert r.obj(lines) == [
        "tail started mid-key",
        "[redacted:private-key]",
        MARKER,
        MARKER,
        "after the key",
    ]


def test_pem_escaped_on_one_line(r: Redactor) -> None:
    line = 'PRIVATE_KEY="-----BEGIN PRIVATE KEY-----\\nMIIEvFAKE\\n-----END PRIVATE KEY-----\\n"'
    assert r.text(line) == 'PRIVATE_KEY="[redacted:private-key]\\n"'


def test_list_items_with_their_own_newlines_keep_their_boundaries(r: Redactor) -> None:
    items = ["a\nb", "-----BEGIN PRIVATE KEY-----\nFAKE", "FAKE", "-----END PRIVATE KEY-----", "c"]
    assert r.obj(items) == ["a\nb", "[redacted:private-key]\n[redacted]", MARKER, MARKER, "c"]


def test_verbatim_values_and_the_boundary_rule() -> None:
    r = Redactor(secret_values=["root", "S3cretValue", "abc", "true", "   ", "", "1234"])
    # short values (< 8 characters): whole tokens only
    assert r.text("password is root.") == "password is [redacted]."
    assert r.text("user root logged in as 'root'") == "user [redacted] logged in as '[redacted]'"
    assert r.text("cd /root/x && ls /home/root") == "cd /root/x && ls /home/root"
    assert (
        r.text("rootfs root.log root-ca myroot root_dir")
        == "rootfs root.log root-ca myroot root_dir"
    )
    assert r.text("pin 1234, not 12345") == "pin [redacted], not 12345"
    # long values: wherever they occur, case-sensitive
    assert r.text("xS3cretValuex and s3cretvalue") == "x[redacted]x and s3cretvalue"
    # too short or a switch: never propagated
    assert r.text("abc is true") == "abc is true"


def test_verbatim_longest_first_and_multiline() -> None:
    r = Redactor(secret_values=["abcd1234", "abcd1234efgh", "line1pw\nline2pw"])
    assert r.text("k abcd1234efgh k abcd1234") == "k [redacted] k [redacted]"
    assert r.text("a line1pw\nline2pw b") == "a [redacted]\n[redacted] b"


def test_values_inside_markers_are_refused_for_idempotence() -> None:
    r = Redactor(secret_values=["redacted", "github-token"])
    assert r.text("[redacted:github-token] [redacted]") == "[redacted:github-token] [redacted]"


def test_from_config_extras_environment_and_supervisor_password() -> None:
    config = Config(
        redact=RedactConfig(names=["^MY_THING$"], patterns=[r"corp-[0-9]{6}"]),
        supervisor=SupervisorConfig(password="FAKEsupervisorPw"),
    )
    env = {"MY_THING": "FAKEthingValue", "HOME": "/root", "OPEN_BUTTON_TOKEN": "1", **SECRET_ENV}
    r = Redactor.from_config(config, [env])
    assert r.text("MY_THING=xyz") == "MY_THING=[redacted]"
    assert r.text("x MY_THING: xyz") == "x MY_THING: [redacted]"
    assert r.text("echo FAKEthingValue") == "echo [redacted]"
    assert r.text("ticket corp-123456 opened") == "ticket [redacted] opened"
    assert r.text("cd /root; echo 1") == "cd /root; echo 1"  # HOME and the switch: not secrets
    assert r.text("auth with FAKEsupervisorPw") == "auth with [redacted]"
    assert r.obj({"MY_THING": "abc"}) == {"MY_THING": MARKER}
    for value in SECRET_ENV.values():
        out = r.text(f"[provision] echo {value} > /tmp/x")
        assert out == "[provision] echo [redacted] > /tmp/x"
    assert r.text("OTHER=xyz") == "OTHER=xyz"


def test_user_pattern_matching_nothing_does_not_sprinkle_markers() -> None:
    r = Redactor(extra_patterns=["x*"])
    assert r.text("axxb ab") == "a[redacted]b ab"


def test_markdown_escaped_marker_is_left_alone(r: Redactor) -> None:
    assert r.text("--password \\[redacted\\]") == "--password \\[redacted\\]"


def test_text_whose_lower_case_is_longer_keeps_positions(r: Redactor) -> None:
    # "İ".lower() is two characters: keyword positions must still point at the right place.
    prefix = "İ" * 12 + " "
    assert (
        r.text(prefix + "pw=abc, then some more words")
        == prefix + "pw=[redacted], then some more words"
    )


def test_every_kind_label_is_declared() -> None:
    assert set(EXPECTED_KIND.values()) <= set(redact.kinds())


def test_every_secret_name_contains_a_scan_keyword() -> None:
    # Name rules only run where a keyword occurs: a secret word without one would be missed.
    names = (
        redact._SECRET_WORDS
        | set(redact._SECRET_SUBSTRINGS)
        | redact._QUERY_SECRET_NAMES
        | {"AUTHORIZATION", "COOKIE", "SET-COOKIE", "BEARER"}
    )
    assert [n for n in names if not any(k in n.lower() for k in redact._KEYWORDS)] == []


def test_text_keeps_line_count_and_is_idempotent_on_a_whole_log(r: Redactor) -> None:
    log = "\n".join(
        [in_context(c, s) for c in sorted(CONTEXTS) for s in FAKE_SECRETS.values()]
        + [line for line, _ in CONTEXT_SECRETS.values()]
    )
    out = r.text(log)
    assert "FAKE" not in out
    assert out.count("\n") == log.count("\n")
    assert r.text(out) == out


@pytest.mark.parametrize(
    "text",
    [
        # found by fuzzing: a mask must not turn a non-boundary into a boundary, nor a value
        # run over a marker, on the next pass
        "npm_" + "a1" * 18 + FAKE_SECRETS["github-fine-grained"],
        "rootAIza" + "b2" * 17 + "c",
        "(AKIAFAKEFAKEFAKEFAKE" + FAKE_SECRETS["jwt"],
        "x11vnc -forevertoken ://",
        '"Cookie:Basic PRIVATE KEY',
        "https://api.invalidsk-" + FAKE_SECRETS["docker"] + "\\:CookieDB_URL=postgres://a:pw@db/x",
        "&x://${Y}root.AIza" + "d4" * 17 + "eAKIA)",
        "hf_" + "e5" * 16 + "-root\nPRIVATE KEY",
        "-u PWD=QUJD:-----BEGIN RSA PRIVATE KEY-----\nQUJDRA==\n",
    ],
)
def test_idempotent_on_glued_and_odd_inputs(text: str) -> None:
    r = Redactor(secret_values=["root", "hunter22"])
    once = r.text(text)
    assert r.text(once) == once
    assert once.count("\n") == text.count("\n")


def test_a_second_pass_gives_the_same_answers_from_memory() -> None:
    """The run redacts one report four times; remembered answers must equal fresh ones."""
    texts = [f"line with {secret} inside" for secret in FAKE_SECRETS.values()]
    warm = Redactor(secret_values=["hunter2-but-longer"])
    first = [warm.text(t) for t in texts]
    again = [warm.text(t) for t in texts]
    fresh = [Redactor(secret_values=["hunter2-but-longer"]).text(t) for t in texts]
    assert first == again == fresh
    pairs = zip(again, FAKE_SECRETS.values(), strict=True)
    assert all(secret not in line for line, secret in pairs)
    # Another redactor's rules are its own: nothing is shared between instances.
    assert Redactor().text("pw hunter2-but-longer") == "pw hunter2-but-longer"
    assert warm.text("pw hunter2-but-longer") != "pw hunter2-but-longer"


# --- the rule data (healthcheck/knowledge/secrets.toml) -------------------------------------

RULES = redact.secret_rules()
EXAMPLES_OF = redact.rule_examples()


def rule_secret(rule: redact.SecretRule, example: str) -> str:
    """What `rule` itself finds secret in one of its true-positive examples."""
    m = rule.regex.search(example)
    assert m is not None, f"{rule.id}: its own regex does not match {example!r}"
    return m.group("secret") if "secret" in rule.regex.groupindex else m.group(0)


def test_every_rule_is_documented_and_has_examples_of_both_kinds() -> None:
    assert len(RULES) >= 90
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert list(EXAMPLES_OF) == ids  # a run's parse (without examples) sees the same rules
    for rule in RULES:
        tp, fp = EXAMPLES_OF[rule.id]
        assert tp, f"{rule.id} has no true-positive example"
        assert fp, f"{rule.id} has no false-positive example"
        assert rule.docs.startswith("https://"), rule.id
        assert all(k == k.lower() and k for k in rule.keywords), rule.id
        assert rule.kind == "password" or rule.kind in redact.kinds()


EXAMPLES = [
    pytest.param(rule, kind, text, id=f"{rule.id}-{kind}{n}")
    for rule in RULES
    for kind, texts in zip(("tp", "fp"), EXAMPLES_OF[rule.id], strict=True)
    for n, text in enumerate(texts)
]


@pytest.mark.parametrize("rule,kind,text", EXAMPLES)
def test_rule_examples(r: Redactor, rule: redact.SecretRule, kind: str, text: str) -> None:
    out = r.text(text)
    if kind == "fp":
        assert out == text
        return
    secret = rule_secret(rule, text)
    assert secret not in out
    assert (f"[redacted:{rule.kind}]" if rule.kind != "password" else MARKER) in out
    assert r.text(out) == out
    # In a long text (a whole report) keywords are looked for near the long runs only.
    prose = "a line of an ordinary report, nothing secret in it at all\n" * 12
    assert secret not in Redactor().text(prose + text + "\n" + prose)


def test_a_rule_without_a_keyword_in_the_text_is_not_tried(r: Redactor) -> None:
    # The prefilter: the GitHub rule's keywords are "ghp_"..., so this text never reaches it.
    index = redact._rule_index()
    text = "plain words and a 0123456789abcdef run"
    assert [rule.id for rule in index.candidates(text, text.lower())] == [
        rule.id for rule in RULES if not rule.keywords
    ]
    assert index.candidates("short", "short") == []


# --- families (tests/secrets_corpus.py; benchmarks/bench_redact.py measures the same) ---------


@pytest.mark.parametrize(
    "line,secret",
    [
        pytest.param(line, secret, id=f"{family}-{n}")
        for family, items in SECRET_FAMILIES.items()
        for n, (line, secret) in enumerate(items)
    ],
)
def test_family_secrets_are_masked(r: Redactor, line: str, secret: str) -> None:
    out = r.text(line)
    assert secret not in out
    assert out.count("\n") == line.count("\n")
    assert r.text(out) == out


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(line, id=f"{family}-{n}")
        for family, items in LOOKALIKE_FAMILIES.items()
        for n, line in enumerate(items)
    ],
)
def test_family_lookalikes_stay_readable(r: Redactor, line: str) -> None:
    assert r.text(line) == line


# --- what issue 12 listed, exactly --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "supervisor.sshd-no-host-keys:sshd",
        "ports.not-listening:token-server:8080",
        "Could not load host key: /etc/ssh/ssh_host_rsa_key",
        "${password}",
        "$1:$2",
        "$(PGPASSWORD)",
        "<user:password>",
        "Authorization: Basic ...",
        "password=$VNC_PW",
        'MONGO_NO_AUTH="mongodb://localhost:27017/db"',
        "access_token_url='https://example.invalid/oauth/access_token'",
        'sequenceKey = "18"',
        'bucket_key: "SalesResults-1.2"',
        "KeyFile=/etc/ssl/private/server.pem",
        "credentialsId: '0f8e7d6c-1b2a-4c3d-9e8f-7a6b5c4d3e2f'",
        "<key>org.apache.maven.plugins:maven-jar-plugin:3.3.0</key>",
        "passwd: password expiry information changed.",
        "&hf_servingcell",
        "SUMO_ACCESS_KEY=${SUMO_ACCESS_KEY:=$2}",
        "token1: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----",
        '["api_key", "secret_key"]',
        'password: "real_key"',
        'password = ",.:-@*?!"',
        'password = "somefakekey"',
        "bypass 'the-cache-please'",
        '<input type="hidden" name="authenticity_token" value="7SWa-Fo1_hsC6oovfBsJFLGPUl2E">',
        'var tokenizer string = "bert-base-uncased"',
    ],
)
def test_issue_damage(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def test_no_rule_is_quadratic_on_its_repeated_keywords(r: Redactor) -> None:
    # A rule that scans lazily to the end of the text from each keyword ("mysql ... -p") takes
    # minutes on a long line of those keywords; a bounded one takes a fraction of a second.
    import time

    keywords = sorted({k for rule in RULES if not rule.gate for k in rule.keywords})
    start = time.process_time()
    for keyword in keywords:
        r.text((keyword + " -x ") * 10_000)
    assert time.process_time() - start < 5


def test_a_line_of_names_costs_its_length_not_its_square(r: Redactor) -> None:
    # "key=key=key=..." or "?auth=?auth=...": every name is judged on the start of its value,
    # not on the rest of the line (which would make a hostile log line take minutes).
    import time

    start = time.process_time()
    for unit in ("auth=", "?auth=", "token: ", "?webhook="):
        line = unit * 2_000
        assert r.text(line).count("\n") == 0
    assert time.process_time() - start < 10


def test_gate_runs_are_the_runs_of_ten_with_a_digit_or_of_twenty() -> None:
    """The gate's one regex finds exactly the runs the rule names (checked against the rule
    written out as a loop, on texts made of the characters that matter)."""
    import random

    from healthcheck.redact import _gate_runs

    def by_the_rule(s: str) -> list[tuple[int, int]]:
        runs = re.finditer(r"[A-Za-z0-9]{10,}", s)
        return [m.span() for m in runs if len(m.group()) >= 20 or not m.group().isalpha()]

    rng = random.Random(13)
    for _ in range(3000):
        s = "".join(rng.choice("aZ09_ -é") for _ in range(rng.randrange(0, 60)))
        assert [m.span() for m in _gate_runs(s)] == by_the_rule(s), s
    assert [m.group() for m in _gate_runs("abcdefghij abcdefghi1 x " + "k" * 20)] == [
        "abcdefghi1",
        "k" * 20,
    ]
