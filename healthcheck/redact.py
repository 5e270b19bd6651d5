"""Secrets never leave the box: every output (report, JSON, context, docs, git) passes here.

Two layers work together:

* names: `is_secret_name` decides whether a variable (or dict key, header, flag) holds a
  secret, from the words of its name and a look at its value: a placeholder or a reference
  ($VAR, <your-password>, os.environ[...]), a path, a URL (whose password the URL rule
  masks), or a number, version or name under a weak word such as KEY is not one;
* text: `Redactor.text` masks anything that looks like a credential wherever it appears:
  private-key blocks, the self-identifying formats of healthcheck/knowledge/secrets.toml
  (token prefixes, webhooks, passwords on command lines: data, with documentation and
  examples, tried only where one of their keywords occurs), passwords in URLs, bearer/basic
  authorization, secret query parameters, assignments, comparisons and call arguments with a
  secret name (the whole value), a random-looking value after "token", "secret", "password"
  or "key" and a blank, and the verbatim values of the container's secret variables.

The tool's own finding ids ("supervisor.sshd-no-host-keys:sshd") are never secrets. A masked
value becomes `MARKER`, or `[redacted:KIND]` for a known format. Nothing of the secret is
kept (no prefix), and every replacement keeps the number of newlines of what it replaced, so
line-oriented callers (log tails redacted as one text) keep their line count. Redacting is
idempotent: markers are never masked again.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from healthcheck.lazyre import compiled, lazy

if TYPE_CHECKING:
    from healthcheck.config import Config

MARKER = "[redacted]"


def _words(text: str) -> tuple[str, ...]:
    """Blank-separated words: long constant lists stay compact and readable."""
    return tuple(text.split())


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Kinds of "[redacted:KIND]" labels written by code; the data's rules add theirs (see kinds()).
FIXED_KINDS = ("private-key",)


# Values that cannot be secrets whatever their name says: a switch, not a credential
# (the seed has OPEN_BUTTON_TOKEN=1 and VNC_PASSWORDLESS=true).
_TRIVIAL_VALUES = frozenset(
    {"", "true", "false", "yes", "no", "on", "off", "0", "1", "none", "null"}
)

# Secret-looking values shorter than this are not propagated verbatim: they would mask common
# words everywhere, and a 3-character secret protects nothing anyway.
MIN_VALUE_LENGTH = 4
# Verbatim values at least this long are masked wherever they occur (a longer token that
# contains the secret still discloses it); shorter ones only as a whole token (see _short_value_re).
_LONG_VALUE_LENGTH = 8

# Whole words of a name that make it secret.
_SECRET_WORDS = _word_set(
    "PASS PASSWORD PASSWORDS PASSWD PASSPHRASE PW PWD TOKEN TOKENS SECRET SECRETS KEY KEYS"
    " APIKEY PRIVKEY CREDENTIAL CREDENTIALS CRED CREDS AUTH COOKIE COOKIES SESSION SESSIONID"
    " PRIVATE DSN PAT JWT BEARER HMAC WEBHOOK WEBHOOKS OAUTH"
)
# Strong enough to count inside a longer word: MYSQLPASSWORD, HFTOKEN, ACCESSTOKEN.
_SECRET_SUBSTRINGS = _words(
    "PASSWORD PASSWD PASSPHRASE SECRET APIKEY TOKEN CREDENTIAL PRIVATEKEY ACCESSKEY PWD"
    " ACCOUNTKEY MASTERKEY SIGNINGKEY ENCRYPTIONKEY AUTHKEY LICENSEKEY SERVICEKEY"
)
# Words that are secret only when their value looks like one: a KEY, an AUTH or a SESSION may
# be a sort key, a mode or a number (sequenceKey = "18", bucket_key: "SalesResults-1.2").
_WEAK_WORDS = _word_set("KEY KEYS AUTH SESSION PRIVATE CRED CREDS WEBHOOK WEBHOOKS")
# ...unless another word of the name says what kind of key: API_KEY=12345 is a key.
_KEY_QUALIFIERS = _word_set(
    "API ACCESS SECRET CLIENT MASTER SIGNING SIGN ENCRYPTION ENCRYPT CRYPT LICENSE SERVICE APP"
    " SHARED ACCOUNT ADMIN ROOT HMAC PRIVATE"
)
# Words that contain a strong substring but say nothing secret (TOKENIZERS_PARALLELISM,
# VNC_PASSWORDLESS): dropped before matching.
_HARMLESS_WORD_RE = lazy(r"\w*TOKENI[SZ]\w*|\w*(?:PASSWORD|PASSWD)LESS|SECRETARY\w*")
# Words that make a name harmless whatever else it says: a CSRF token protects a form, not an
# account.
_HARMLESS_NAME_WORDS = _word_set("CSRF XSRF AUTHENTICITY")  # Rails' authenticity_token is CSRF
# Whole names that look secret but are well-known plumbing, whatever their value.
_FALSE_FRIEND_NAME_RE = lazy(
    r"SSH_AUTH_SOCK|XAUTHORITY|XAUTHLOCALHOSTNAME|XDG_SESSION_\w+|DESKTOP_SESSION"
    r"|DBUS_SESSION_BUS_\w+|SESSION_MANAGER|GPG_AGENT_INFO|OLDPWD"
    # Exception class names in tracebacks: "KeyError: 'HF_HOME'" is not a key.
    r"|\w*(?:Error|Exception|Warning)",
    re.IGNORECASE,
)
# Names whose value is a location; a path there is not a secret (HF_TOKEN_PATH=/root/x).
_LOCATION_WORDS = _word_set(
    "FILE FILES FILENAME PATH PATHS DIR DIRS DIRECTORY SOCK SOCKET FOLDER LOCATION HOME"
)
# Words that turn a numeric value into a count or a setting (MAX_TOKENS=512,
# PASSWORD_MIN_LENGTH=12, SESSION_TIMEOUT=3600).
_QUANTITY_WORDS = _word_set(
    "MAX MIN NUM COUNT LIMIT LEN LENGTH SIZE TOTAL USAGE USED TIMEOUT TTL EXPIRY EXPIRES EXPIRE"
    " AGE PORT RETRIES INTERVAL"
)
_PUBLIC_WORDS = frozenset({"PUBLIC", "PUB", "PUBLISHABLE"})
_PUBLIC_SECRET_WORDS = _word_set("KEY KEYS TOKEN TOKENS")  # PUBLIC_KEY, publicToken
# (private_key_id: which key of a service account, not the key.)
_ID_SECRET_WORDS = _word_set("CREDENTIAL CREDENTIALS CRED CREDS KEY KEYS PRIVATE")
# A last word that makes the name about a secret, not the secret itself (AUTH_TYPE, SECRET_NAME,
# TOKEN_USER, PASSWORD_POLICY, PRIVATE_IP). URL is not one: URLs carry credentials.
_METADATA_WORDS = _word_set(
    "TYPE KIND NAME METHOD MODE ALGORITHM USER USERNAME POLICY FORMAT VERSION ENABLED REQUIRED"
    " PROVIDER BACKEND SCOPE SCOPES ISSUER STRATEGY FINGERPRINT IP IPADDR ADDR HOST HOSTNAME"
    " LENGTH LEN SIZE COUNT CHARS SOURCE VARIABLE"
)
# Names whose value may be a URL that is itself the secret (a webhook's path, a DSN's key).
_URL_SECRET_WORDS = _word_set("WEBHOOK WEBHOOKS DSN")
# Names of an address: its value is secret only with credentials in it.
_LOCATION_NAME_WORDS = _word_set("URL URI ENDPOINT")

_CAMEL_RE = lazy(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT_RE = lazy(r"[^A-Za-z0-9]+")
_NUMBER_RE = lazy(r"[+-]?\d+(?:\.\d+)?")
_PATH_RE = lazy(r"(?:~|\.{1,2})?/[^\s:]*(?::(?:~|\.{1,2})?/[^\s:]*)*")
# Placeholders and references say where a secret comes from, not what it is: $VAR, ${VAR},
# $(cmd), $1, %s, %(name)s, {name}, {{ template }}, <your-password>, ****, xxxx, ..., and
# code that reads it (os.environ["X"], settings.DB_PASSWORD, get_password()).
_REFERENCE_RE = lazy(
    r"\$(?:[A-Za-z_]\w*|\{[A-Za-z_][\w.]*(?::?[\-=+?](?:\$\w+|\$\{\w+\})?)?\}|\d|\(.*\)|\{\{.*\}\})"
    r"|\{[A-Za-z_][\w.\-]*\}|\{%.*|\{[A-Za-z_]\w*\(.*|\[[A-Z][A-Z0-9_ ]*\]"
    r"|%(?:\([A-Za-z_]\w*\))?[sdr]|\{[A-Za-z_][\w.]*\}|\{\{.*|\{%.*|<[^<>\n]*>"
    r"|[*xX.•#]{3,}|\[redacted[^\]]*\]"
    r"|(?:self|this|os|process|env|config|cfg|conf|settings|args|opts|options|params|request|req"
    r"|ctx|context|secrets|vars|values|props|properties|System|Environment|credentials|creds)"
    r"(?:\.[A-Za-z_]\w*|\[[^\]\n]*\]|\([^)\n]*\))+"
    # a call: get_password(), getpass(), os.getenv("X") (not "Sup3r(x)": no "_" nor ".")
    r"|(?:[A-Za-z_]\w*[._][\w.]*|[a-z]+)\((?:\"[^\"\n]*\"|'[^'\n]*'|[\w.]*)?\)?"
    # code cut short by a quote: os.environ["X"] seen as `os.environ[`, getenv("X") as `getenv(`
    r"|[A-Za-z_][\w.]*[\[(]"
)
# One placeholder inside a larger value: "$1:$2", "${USER}:${PASS}".
_REFERENCE_LIST_RE = lazy(r"(?:\$(?:\d|[A-Za-z_]\w*|\{[A-Za-z_]\w*\})[:@/,;]?)+")
_URL_RE = lazy(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
_UUID_RE = lazy(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# A file path with at least one named directory or file (not base64 that starts with "/").
_FILE_PATH_RE = lazy(
    r"(?:~|\.{1,2})?(?:/[\w.@\-]+)+/?|[\w.\-]+\.(?:pem|key|crt|cer|p12|pfx|jks|json|ya?ml|toml|ini|conf|cfg|txt|env)"
)
_VERSION_TAIL_RE = lazy(r"[-_.]?v?\d+(?:\.\d+)*$")
_WORD_PART_RE = lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]+")
_VOWELS = frozenset("aeiouyAEIOUY")


# Placeholders inside a value: a run of one character (xxxxxxxx, 00000000), words that say it is
# an example, the alphabet in order (abcdefgh).
# Placeholders that say so whatever their shape: a run of x, 0 or * (xxxxxxxx, 00000000),
# "your_token", "token_here", "replace_with_...", "placeholder".
_SAID_PLACEHOLDER = (
    r"[xX]{6,}|(?P<said>[0-9*#.\u2022])(?P=said){7,}|placeholder|changeme|replace[_\-]?(?:with|me)|redacted|dummy"
    r"|your[_\-]?(?:api|token|key|secret|pass|user)|(?:token|key|secret|password)[_\-]?here"
)
# A capitalised word written over and over ("hf_FakeFakeFakeFake...") is typed by a person, not
# generated.
_REPEATED_UNIT = r"(?P<unit>[A-Z][a-z]{2,5})(?P=unit){2,}"
_TOKEN_PLACEHOLDER_RE = lazy(
    _SAID_PLACEHOLDER + "|(?-i:EXAMPLE)|(?-i:" + _REPEATED_UNIT + ")", re.IGNORECASE
)
# A value under a name, or after a keyword, is also a placeholder when it is an example or the
# alphabet in order. (Not a token with a known prefix: test data writes those that way, and a
# prefix is reason enough to mask.)
_PLACEHOLDER_RE = lazy(
    _SAID_PLACEHOLDER
    + r"|(?P<run>.)(?P=run){7,}|(?<!\.)example(?!\.)|\.example$|abcdefghijkl|opqrstuvwxyz",
    re.IGNORECASE,
)
# Words that stand for a password in documentation ("curl -u user:pass", "-p password").
_PLACEHOLDER_WORDS = _word_set(
    "password passwd pass pwd token secret test changeme xxx yyy foo bar user username apikey"
    " api_key key mypassword yourpassword new null undefined none nil"
)


def _is_reference(value: str) -> bool:
    """A placeholder or a reference to where the secret is, not the secret."""
    return bool(
        value.lower() in _PLACEHOLDER_WORDS
        or _REFERENCE_RE.fullmatch(value)
        or _REFERENCE_LIST_RE.fullmatch(value)
        or _PLACEHOLDER_RE.search(value)
    )


def _is_wordish(value: str) -> bool:
    """Made of words, small numbers and a version: an identifier or a name, not a random token
    ("SalesResults-1.2", "sshd", "org.apache.maven:maven-core:3.9.6", "rsa_key")."""
    body = _VERSION_TAIL_RE.sub("", value) or value
    parts = [p for p in _WORD_PART_RE.findall(body) if p[0].isalnum()]
    if not parts or len(parts) * 4 > len(body) + 3:  # too fragmented: xKqPzWtr, AbCdEf are random
        return False
    letters = numbers = 0
    for part in parts:
        if part.isdigit():
            numbers += 1
            if len(part) > 4 or numbers > 1:  # abc123def456: digits strewn through letters
                return False
            continue
        letters += 1
        if (len(part) > 4 and _VOWELS.isdisjoint(part)) or len(part) > (
            8 if part.isupper() else 20
        ):
            return False
    return letters > 0


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts: dict[str, int] = {}
    for c in value:
        counts[c] = counts.get(c, 0) + 1
    n = len(value)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


def _random_looking(value: str) -> bool:
    """Long, mixed and varied enough to be a generated token (used where only a keyword and a
    blank, not a separator, say a secret may follow)."""
    return (
        len(value) >= 12
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and not _FILE_PATH_RE.fullmatch(value)
        and not _UUID_RE.fullmatch(value)
        and not _is_wordish(value)
        and _entropy(value) >= 3.0
    )


def _is_url(value: str) -> bool:
    """A URL: its secrets, if any, are its password and its secret parameters, which the URL
    and query rules mask; the rest (scheme, host, path) stays readable whatever its name."""
    return _URL_RE.fullmatch(value) is not None


def _unquote(value: str) -> str:
    """`value` without blanks around it and without one pair of quotes (\\" " or ')."""
    value = value.strip()
    if len(value) < 2 or value[0] not in "\"'\\`@":
        return value  # the common case, decided without a loop
    if value.startswith('@"') and value.endswith('"') and len(value) >= 3:
        return value[2:-1]  # C#'s @"verbatim string"
    if value.startswith("\\\\"):  # JSON in a string in JSON: \\\"x\\\" (docker's auth config)
        nested = _NESTED_QUOTED_RE.fullmatch(value)
        return nested.group("body") if nested else value
    for quote in ('\\"', '"', "'", "`"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return value[len(quote) : -len(quote)]
    return value


# A value quoted with an escaped quote escaped again, as many times as it was nested.
_NESTED_QUOTED_RE = lazy(r"(?P<q>\\{2,}[\"'])(?P<body>[^\"'\\]*)(?P=q)")


def _is_trivial(value: str) -> bool:
    """Empty or a boolean-ish switch: never worth masking."""
    return _unquote(value).lower() in _TRIVIAL_VALUES


def _is_marked(value: str) -> bool:
    """Already a marker (possibly quoted or Markdown-escaped): leave it, for idempotence."""
    if "redacted" not in value:
        return False
    return value.replace("\\", "").lstrip("\"'`").startswith("[redacted")


def _looks_like_path(value: str) -> bool:
    """An absolute or relative path, or a colon-separated list of them."""
    return _PATH_RE.fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)
def _name_words(name: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(all words of the name, the words that make it secret), or None when the name alone
    says it is not secret. Words are upper case, trailing digits stripped."""
    if _FALSE_FRIEND_NAME_RE.fullmatch(name):
        return None
    words = [
        w.upper().rstrip("0123456789") for w in _WORD_SPLIT_RE.split(_CAMEL_RE.sub("_", name)) if w
    ]
    words = [w for w in words if w and not _HARMLESS_WORD_RE.fullmatch(w)]
    secret = frozenset(
        w for w in words if w in _SECRET_WORDS or any(s in w for s in _SECRET_SUBSTRINGS)
    )
    if (
        not secret
        or (secret <= _PUBLIC_SECRET_WORDS and not _PUBLIC_WORDS.isdisjoint(words))
        or words[-1] in _METADATA_WORDS
        or (words[-1] == "ID" and secret <= _ID_SECRET_WORDS)  # credentialsId, key_id
        or not _HARMLESS_NAME_WORDS.isdisjoint(words)
    ):
        return None
    return frozenset(words), secret


def is_secret_name(
    name: str, value: str | None = None, extra: Sequence[re.Pattern[str]] = ()
) -> bool:
    """Whether a variable called `name` (holding `value`, when known) holds a secret.

    The name is split into words on `_`, `-`, `.`, camelCase and trailing digits, matched
    case-insensitively: any word in PASS, PASSWORD, PW, PWD, TOKEN, SECRET, KEY, APIKEY,
    CREDENTIAL(S), AUTH, COOKIE, SESSION, PRIVATE, DSN, PAT, JWT, WEBHOOK... makes it secret,
    and so do PASSWORD, PASSWD, SECRET, APIKEY, TOKEN (and a few more) inside any word. `extra`
    patterns (config `redact.names`) are searched in the whole name and count as secret names.

    Not secret, so that the report stays readable:

    * a value that is empty or a switch ("", true/false, yes/no, on/off, 0/1, none, null);
    * false friends: TOKENIZERS_*, *_PASSWORDLESS, KEYBOARD/KEYMAP (other words), SSH_AUTH_SOCK,
      XAUTHORITY, XDG_SESSION_*, DESKTOP_SESSION, DBUS_SESSION_BUS_*, SESSION_MANAGER, and
      exception class names (KeyError);
    * a path value when the name says it is a location (*_FILE, *_PATH, *_DIR, *_SOCK...) or
      is PWD: the path to a secret is not the secret;
    * a number when the name says it is a quantity (MAX_TOKENS, PASSWORD_MIN_LENGTH,
      SESSION_TIMEOUT) or the secret word is a plural (TOKENS, KEYS: a count);
    * a public key (PUBLIC_KEY, SSH_PUBLIC_KEY, STRIPE_PUBLISHABLE_KEY);
    * a name about a secret rather than holding one, by its last word (AUTH_TYPE, SECRET_NAME,
      TOKEN_USER, PASSWORD_POLICY, PRIVATE_IP; not *_URL, which may carry credentials).

    Without a value only the name decides, conservatively: `is_secret_name("DB_PASSWORD_FILE")`
    is True, `is_secret_name("DB_PASSWORD_FILE", "/run/secrets/db")` is False.
    """
    plain = None
    if value is not None:
        plain = _unquote(value)
        if plain.lower() in _TRIVIAL_VALUES:
            return False
    if extra and any(pattern.search(name) for pattern in extra):
        return True
    verdict = _name_words(name)
    if verdict is None:
        return False
    if plain is None:
        return True
    words, secret = verdict
    return _value_may_be_secret(words, secret, plain)


def _value_may_be_secret(words: frozenset[str], secret: frozenset[str], plain: str) -> bool:
    """Whether `plain`, under a name with these words, can be a secret."""
    if _looks_like_path(plain) and (
        not _LOCATION_WORDS.isdisjoint(words) or all("PWD" in word for word in secret)
    ):
        return False
    if _NUMBER_RE.fullmatch(plain) and (
        not _QUANTITY_WORDS.isdisjoint(words) or secret <= {"TOKENS", "KEYS"}
    ):
        return False
    if _is_reference(plain) or _FILE_PATH_RE.fullmatch(plain) or _SNAKE_NAME_RE.fullmatch(plain):
        return False  # also "real_key", "my_password": a variable, not its value
    if not any(c.isalnum() for c in plain) or ("fake" in plain and _is_wordish(plain)):
        return False  # ",.:-@*?!", "somefakekey": test data, not a secret
    if _is_url(plain) and _URL_SECRET_WORDS.isdisjoint(words):
        return False
    # credentialsId: which credential, not it; but Vault's AppRole secret_id is the credential
    if "ID" in words and "SECRET" not in secret and _UUID_RE.fullmatch(plain):
        return False
    if not _LOCATION_NAME_WORDS.isdisjoint(words) and "@" not in plain and "=" not in plain:
        return False  # dev.credentials.url=dev-lb1.api.example:5215
    if _CODE_NAME_RE.fullmatch(plain) and (
        _SECRET_WORD_INSIDE_RE.search(plain) or _words_of(plain.rsplit(".", 1)[-1]) == words
    ):
        return False  # passwordVariable: 'PASSWORD', KeyPair = X25519.KeyPair
    weak = secret <= _WEAK_WORDS and _KEY_QUALIFIERS.isdisjoint(words)
    return not (
        weak
        and (
            len(plain) < 6
            or _NUMBER_RE.fullmatch(plain)
            or _is_wordish(plain)
            # keyPressed = kVK_Return.u16 (not "oaaXk2...v1.eyJ1c2Vy...": random parts)
            or ("." in plain and _CODE_NAME_RE.fullmatch(plain) and not _has_random_part(plain))
        )
    )


# A snake_case name that speaks of a secret ("real_key", "my_password"): a variable.
_SNAKE_NAME_RE = lazy(
    r"[a-z]+(?:_[a-z]+)*_(?:key|token|secret|password|passwd|pass|pwd)(?:_[a-z]+)*"
    r"|(?:key|token|secret|password|passwd|pwd)(?:_[a-z]+)+"
)
# An identifier or a dotted chain of them: code, when it names a secret rather than holds one.
_CODE_NAME_RE = lazy(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SECRET_WORD_INSIDE_RE = lazy(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|_KEY\b|^KEY_")


def _has_random_part(dotted: str) -> bool:
    """Whether a part of a dotted name looks generated (a token with dots, not code)."""
    return any(_random_looking(part) for part in dotted.split("."))


def _words_of(name: str) -> frozenset[str]:
    """The upper-case words of a name, as _name_words splits them."""
    return frozenset(
        w.upper().rstrip("0123456789") for w in _WORD_SPLIT_RE.split(_CAMEL_RE.sub("_", name)) if w
    )


def _mask(original: str, kind: str | None = None) -> str:
    """The marker for `original`, with as many newlines: line counts must not change."""
    first = f"[redacted:{kind}]" if kind else MARKER
    return first + ("\n" + MARKER) * original.count("\n")


# --- rules ------------------------------------------------------------------------------------
# Python's regex engine is fast only when a pattern starts with a literal it can search for;
# so patterns start with their literal and check what precedes it with a lookbehind placed
# after it, and rules about names are only tried where a secret keyword occurs (see
# Redactor._names).

# A whole block, or from BEGIN to the end of the text when the END was cut off (log tails).
_PEM_BLOCK_RE = lazy(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
# An END line whose BEGIN was cut off: the base64 lines right above it are key material.
_PEM_END_LINE_RE = lazy(r"^[ \t]*-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----", re.M)
_BASE64_LINE_RE = lazy(r"[ \t]*[A-Za-z0-9+/=]+[ \t]*\r?")


def _private_key(m: re.Match[str]) -> str:
    # "-----BEGIN ... KEY----------END ... KEY-----" in documentation holds no key.
    body = m.group(0).split("-----")
    if len(body) >= 5 and not "".join(body[2].replace("\\n", "").split()):
        return m.group(0)
    return _mask(m.group(0), "private-key")


def _mask_orphan_key_ends(s: str) -> str:
    out: list[str] = []
    done = 0
    for m in _PEM_END_LINE_RE.finditer(s):
        start = m.start()
        # Walk back over the lines directly above while they look like base64.
        while start > done:
            prev = s.rfind("\n", done, start - 1) + 1
            if prev < done or not _BASE64_LINE_RE.fullmatch(s, prev, start - 1):
                break
            start = prev
        if start == m.start():
            continue  # a lone END line discloses nothing
        out += [s[done:start], _mask(s[start : m.end()], "private-key")]
        done = m.end()
    return "".join(out) + s[done:] if out else s


# --- formats (data) ---------------------------------------------------------------------------
# The self-identifying formats (token prefixes, webhook URLs, passwords on command lines) are
# data: healthcheck/knowledge/secrets.toml, one entry per format with its documentation and
# examples. Loaded on first use; a rule's regex is compiled the first time its keyword shows up.

RULES_RESOURCE = "knowledge/secrets.toml"
# Rules marked `gate` (the default) are tried only on texts with a run of 10 letters or digits
# that has a digit or is 20 long: every token has one, most strings of a report (states, names,
# prose) don't.
_GATE_RUN_RE = lazy(r"[A-Za-z0-9]{10,}")


# The runs that pass the gate, found in C: a whole run (nothing alphanumeric on either side)
# of 20 or more, or of 10 or more with a digit in it. A loop over every run of 10 in Python
# cost 15 ms on a 60 KB report.
_GATE_PASS_RE = lazy(
    r"(?<![A-Za-z0-9])"
    r"(?:[A-Za-z0-9]{20,}|(?=[A-Za-z0-9]{10})[A-Za-z]*[0-9][A-Za-z0-9]*)"
    r"(?![A-Za-z0-9])"
)


def _gate_runs(s: str) -> Iterator[re.Match[str]]:
    """The runs of `s` that pass the gate."""
    return _GATE_PASS_RE.finditer(s)


# "\b" + literal prefix, as written in the data: rewritten as literal + lookbehind (see
# _compile_rule) so that Python searches the literal at C speed.
_LEADING_BOUNDARY_RE = lazy(r"\\b((?:[A-Za-z0-9_]|\\[.\-])+)")


@functools.cache  # a rule's pattern, compiled when it is first a candidate
def _compile_rule(source: str) -> re.Pattern[str]:
    """`source` compiled; a leading "\\b" before a literal becomes a lookbehind placed after the
    literal, which also counts a marker's "]" as part of a word (idempotence: "x[redacted]"
    must not become a boundary on a second pass)."""
    m = _LEADING_BOUNDARY_RE.match(source)
    if m is None:
        return compiled(source)
    literal, rest = m.group(1), source[m.end() :]
    if rest[:1] in ("?", "*", "+", "{"):  # the quantifier belongs to the literal's last unit
        cut = 2 if literal.endswith(("\\.", "\\-")) and len(literal) > 2 else 1
        literal, rest = literal[:-cut], literal[-cut:] + rest
    if not literal:
        return compiled(source)
    # Not after a letter, digit, "_", a marker's "]", nor "+": inside base64, "AKIA" or "EZAK"
    # is chance. ("/" may come before a token: a path or a URL that holds one.)
    return compiled(f"{literal}(?<![A-Za-z0-9_\\]+]{literal}){rest}")


class SecretRule(NamedTuple):
    """One format of healthcheck/knowledge/secrets.toml (see the comment at its top)."""

    id: str
    kind: str
    source: str
    keywords: tuple[str, ...]
    docs: str
    needs_digit: bool = False
    # The prefix alone says it is a token: a body that reads like words is masked too
    # ("glpat-" + 20 characters). Without it, a word-like body is an identifier (hf_hub_x).
    distinctive: bool = False
    gate: bool = True

    @property
    def regex(self) -> re.Pattern[str]:
        return _compile_rule(self.source)

    def replace(self, m: re.Match[str]) -> str:
        """The match with its secret masked (for `regex.sub`), or as it was."""
        label = None if self.kind == "password" else self.kind
        start, end = m.span("secret") if "secret" in m.re.groupindex else m.span()
        secret = m.string[start:end]
        if (
            (self.needs_digit and not any(c.isdigit() for c in secret))
            or _is_marked(secret)
            or _is_token_placeholder(secret + _rest_of_word(m.string, end))
            or (self.kind == "password" and _is_reference(_unquote(secret)))
            or (
                label is not None and not self.distinctive and _is_wordish(secret)
            )  # hf_requiredCharacteristicTypes
        ):
            return m.group(0)
        whole = m.start()
        return m.group(0)[: start - whole] + _mask(secret, label) + m.group(0)[end - whole :]


def _is_token_placeholder(token: str) -> bool:
    """Whether a token with a known prefix is an example: it says so, or is mostly runs of one
    digit ("shippo_live_1111...1111", "xoxb-0000...-0000...-0000..."). Runs of ones among the
    ids of a real token ("xoxa-2-511111111-3111...-e039d028...") are not enough."""
    in_runs = 0
    for m in _TOKEN_PLACEHOLDER_RE.finditer(token):
        said = m.group("said")
        if said is None or not said.isdigit():
            return True
        in_runs += len(m.group())
    return 3 * in_runs >= 2 * len(token)


_REST_OF_WORD_RE = lazy(r"[^\s\"'`<>,;]{0,40}")


def _rest_of_word(s: str, end: int) -> str:
    """What continues the token ending at `end` ("xoxp-1-2-3-" + "########")."""
    m = _REST_OF_WORD_RE.match(s, end)
    return m.group() if m else ""


def _load_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _rules_text() -> str:
    # The package's own file (installed as files, as catalogue.py reads its knowledge):
    # importlib.resources would cost a run its import and zipfile's, 3-5 ms.
    with open(os.path.join(os.path.dirname(__file__), RULES_RESOURCE), encoding="utf-8") as f:
        return f.read()


# The examples are for the tests (rule_examples); a run skips them, which halves the parsing.
# They are written one per line between "tp = [" / "fp = [" and a "]" of their own.
_EXAMPLES_RE = lazy(r"^(?:tp|fp) = \[\n(?:[ \t]+.*\n)*\]\n", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def secret_rules() -> tuple[SecretRule, ...]:
    """The rules of healthcheck/knowledge/secrets.toml, in file order (the first that masks a
    span wins: a more specific format comes before a general one)."""
    from healthcheck import cache

    # Parsed once per content of the file: a run reads the parse back (about 1 ms instead
    # of 6 ms with the parse).
    text = _rules_text()
    key = cache.digest(text.encode("utf-8"))
    raw = cache.load("secret-rules", key)
    if not isinstance(raw, dict):
        raw = _load_toml(_EXAMPLES_RE.sub("", text))
        cache.store("secret-rules", key, raw)
    return tuple(
        SecretRule(
            id=entry["id"],
            kind=entry["kind"],
            source=entry["regex"],
            keywords=tuple(entry["keywords"]),
            docs=entry["docs"],
            needs_digit=entry.get("needs_digit", False),
            distinctive=entry.get("distinctive", False),
            gate=entry.get("gate", True),
        )
        for entry in raw["rule"]
    )


def rule_examples() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Rule id -> (true-positive examples, false-positive examples), from the whole file."""
    raw = _load_toml(_rules_text())
    return {e["id"]: (tuple(e.get("tp", ())), tuple(e.get("fp", ()))) for e in raw["rule"]}


# In a long text (a whole report, a log tail), a gated rule's keyword is looked for only near
# the runs that pass the gate: a token's prefix is within this many characters before its
# random part (a webhook's host is the farthest), or just after it ("-us21" of Mailchimp).
_WINDOW_BEFORE = 72
_WINDOW_AFTER = 16
_WINDOW_MIN_TEXT = 512


def _near_long_runs(lowered: str) -> str:
    """The parts of `lowered` around its long runs of letters and digits, joined by newlines."""
    parts: list[str] = []
    start = end = -1
    for m in _gate_runs(lowered):
        a, b = max(m.start() - _WINDOW_BEFORE, 0), m.end() + _WINDOW_AFTER
        if a <= end:
            end = b
            continue
        if end >= 0:
            parts.append(lowered[start:end])
        start, end = a, b
    if end >= 0:
        parts.append(lowered[start:end])
    return "\n".join(parts)


class _RuleIndex(NamedTuple):
    """Which rules a text calls for. Each keyword is looked for once per text, with
    `filter(lowered.__contains__, ...)`: no Python code runs per keyword, which keeps a hundred
    rules about as cheap as a dozen."""

    rules: tuple[SecretRule, ...]
    by_keyword: dict[str, tuple[int, ...]]
    gated_keywords: tuple[str, ...]
    open_keywords: tuple[str, ...]  # of rules that skip the gate
    always: tuple[int, ...]  # gated rules without keywords

    @classmethod
    def build(cls, rules: tuple[SecretRule, ...]) -> _RuleIndex:
        by_keyword: dict[str, list[int]] = {}
        gated: dict[str, None] = {}
        open_: dict[str, None] = {}
        always = []
        for number, rule in enumerate(rules):
            if not rule.keywords:
                always.append(number)
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword, []).append(number)
                (gated if rule.gate else open_)[keyword] = None
        return cls(
            rules,
            {k: tuple(v) for k, v in by_keyword.items()},
            tuple(k for k in gated if k not in open_),
            tuple(open_),
            tuple(always),
        )

    def candidates(self, s: str, lowered: str) -> list[SecretRule]:
        if len(s) < _SHORTEST_CANDIDATE:
            return []
        found = list(filter(lowered.__contains__, self.open_keywords))
        # The plain search first (in C): most texts have no run of 10 at all.
        gated = _GATE_RUN_RE.search(s) is not None and next(_gate_runs(s), None) is not None
        if gated:
            near = lowered if len(s) <= _WINDOW_MIN_TEXT else _near_long_runs(lowered)
            found += filter(near.__contains__, self.gated_keywords)
        if not found and not gated:
            return []
        by_keyword = self.by_keyword
        numbers = {n for keyword in found for n in by_keyword[keyword]}
        if gated:
            numbers.update(self.always)
        rules = self.rules
        return [rules[n] for n in sorted(numbers) if gated or not rules[n].gate]


# No secret of any rule, with what must surround it, fits in fewer characters ("sshpass -p x").
_SHORTEST_CANDIDATE = 12


@functools.lru_cache(maxsize=1)
def _rule_index() -> _RuleIndex:
    return _RuleIndex.build(secret_rules())


@functools.lru_cache(maxsize=1)
def kinds() -> tuple[str, ...]:
    """Every "[redacted:KIND]" label the redactor can write."""
    return (*FIXED_KINDS, *dict.fromkeys(r.kind for r in secret_rules() if r.kind != "password"))


def __getattr__(name: str) -> Any:
    # KINDS was a constant before the rules became data; it is now read from them on demand.
    if name == "KINDS":
        return kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=1)
def _marker_text() -> str:
    """All markers in one string: verbatim values found in it are refused (masking them would
    break idempotence)."""
    return " ".join([MARKER, *(f"[redacted:{kind}]" for kind in kinds())])


# A secret word followed by a blank, then what may be its value ("token 3fA9...", "password
# 'x y'"): masked only when the value is quoted or looks random (see _random_looking), so that
# prose ("the token expired", "password expiry information changed") stays readable.
_BLANK_KEYWORDS = _words("token secret pwd key pass")  # every word of _BLANK_VALUE_RE starts so
# A dash or a bar may stand between ("twilio token - 'x'"), "is" in a sentence ("your API
# key is 3fA9..."), or a comma in a CSV row ("apiToken,3fA9..."); "pass" only as a word of its
# own (not "bypass"). Tried only where one of _BLANK_KEYWORDS occurs.
_BLANK_VALUE_RE = lazy(
    r"(?P<name>token|secret|pwd|key|passwd|password|passphrase|pass(?<![a-z]pass))[es]?"
    r'(?P<sep>"?[ \t]+(?:[\-|][ \t]+|(?P<verb>is|was)[ \t]+)?|(?P<comma>,))'
    r"(?P<val>\"[^\"\n]{4,}\"|'[^'\n]{4,}'|[a-z0-9+/_\-.~=]{12,}(?![^\s,;)\]}]))"
)
_STRONG_BLANK_NAME_RE = lazy(r".*(?:pass|secret|token|pwd)")


def _blank_values(s: str, present: list[str]) -> str:
    """Mask the value after "<secret word> " (see _BLANK_VALUE_RE): a quoted value after a
    strong word (password, secret, token), or a random-looking one after any."""

    def replace(m: re.Match[str]) -> str:
        start, end = m.span("val")
        val = s[start:end]
        plain = _unquote(val)
        quoted = plain != val
        if (
            _is_marked(val)
            or _is_reference(plain)
            or not (
                _random_looking(plain)
                or (
                    quoted
                    and not m.group("verb")  # "the token is 'expired'" is prose
                    and not m.group("comma")  # a CSV row: only a random-looking value
                    and _STRONG_BLANK_NAME_RE.match(m.group("name"))
                    and " " not in plain
                )
            )
        ):
            return s[m.start() : m.end()]
        return s[m.start() : start] + _requote(val, MARKER)

    lowered = _lower_same_length(s)
    out: list[str] = []
    done = 0
    # Tried only where a keyword is (found in C), not at every position of a long text.
    starts = set()
    for keyword in present:
        at = lowered.find(keyword)
        while at != -1:
            starts.add(at)
            at = lowered.find(keyword, at + 1)
    for start in sorted(starts):
        m = _BLANK_VALUE_RE.match(lowered, start)
        if m is not None and start >= done:
            out += [s[done:start], replace(m)]
            done = m.end()
    return "".join(out) + s[done:] if out else s


# scheme://user:PASSWORD@host: only the password goes. The password may contain "@" (the
# last one before the host ends it). Neither part may run over a marker (idempotence).
_URL_USERINFO_RE = lazy(
    r"://(?<=[A-Za-z0-9+.\-]://)(?P<user>(?:(?!\[redacted)[^\s:/?#@\"'<>])*)"
    r":(?P<val>(?:(?!\[redacted)[^\n\t/?#\"'<>])+|\[redacted\])@"
)
# "host:8080 and mail me@x" is a port and prose, not a password with blanks in it.
_PORT_THEN_PROSE_RE = lazy(r"\d+ ")


# Passwords in URLs of documentation: "username:password@", "user:mypassword@", "user:abc@".
_URL_PLACEHOLDER_PASSWORDS = _word_set("password mypassword yourpassword secret changeme pass123")


def _url_userinfo(m: re.Match[str]) -> str:
    val = m.group("val")
    if (
        _is_marked(val)
        or _REFERENCE_RE.fullmatch(val)
        or _REFERENCE_LIST_RE.fullmatch(val)
        or _PLACEHOLDER_RE.search(val)
        or val.lower() in _URL_PLACEHOLDER_PASSWORDS
        or len(set(val)) == 1  # 1111
        or val == m.group("user")  # postgres:postgres, the image's default
    ):
        return m.group(0)
    if " " in val and (len(val) > 64 or val.count(" ") > 3 or _PORT_THEN_PROSE_RE.match(val)):
        return m.group(0)
    return f"://{m.group('user')}:{_mask(val)}@"


# curl -u user:PASSWORD, --user user:PASSWORD. Neither part may run over a marker.
_USER_FLAG_RE = lazy(
    r"(?P<keep>-(?<!\S-)(?:u|-user|-proxy-user)(?:[ \t]+|=)[\"']?(?:(?!\[redacted)[^\s:\"'])*:)"
    r"(?P<val>'[^'\n]+'|\"[^\"\n]+\"|(?:(?!\[redacted)[^\s\"'])+)"
)


def _user_flag(m: re.Match[str]) -> str:
    val = m.group("val")
    # "docker run -u 1000:1000" is a uid:gid, not user:password.
    # "<user:password>" is a placeholder, not a user and a password.
    plain = _unquote(val)
    if (
        _is_marked(plain)
        or _NUMBER_RE.fullmatch(plain)
        or _is_reference(plain)
        or "<" in m.group("keep")
    ):
        return m.group(0)
    return m.group("keep") + _requote(val, _mask(plain))


# The rules below are about a name (a header, a parameter, a flag, a variable). They are tried
# only at names that contain one of these keywords (in the lower-cased text): every secret
# word and substring above contains one, as do the header and query names below.
_KEYWORDS = _words(
    "pass pw token secret key cred auth cookie session private dsn pat jwt bearer hmac sig webhook"
)
# A keyword, the rest of its name, then what a rule needs after a name: a separator (after a
# closing quote, maybe escaped) or ">" (XML). One regex per keyword, each starting with its
# literal: a literal is searched at C speed, an alternation is not.
# A declared type between a name and its quoted value: `var token string = "x"`,
# `val token: String = "x"`.
_TYPE_ANNOTATION = r"(?:[ \t]*:[ \t]*|[ \t]+)[A-Za-z_][A-Za-z0-9_.<>\[\]]*[ \t]*=[ \t]*(?=[\"'`])"
# What follows a name for a name rule: a separator (after a closing quote, maybe escaped, or an
# index: "secrete[] ="), =, :, a comparison (!=), a comma between a quoted name and a quoted
# value, or a call with a quoted argument ('secret("x")', 'secrete.assign("x")').
_AFTER_NAME = (
    r"\\*[\"']?[ \t]*(?:[=:]|!=|[?+.]=|\?\?=)|\[[0-9]*\][ \t]*=|[\"'][ \t]*,[ \t]*[\"']"
    r"|(?:\.[A-Za-z_][A-Za-z0-9_]*)?\([ \t]*[\"'`]" + r"|" + _TYPE_ANNOTATION
)


@functools.cache
def _keyword_re(keyword: str) -> re.Pattern[str]:
    """The hit regex of one keyword: it only finds candidates (a rule then checks what really
    follows the name). Compiled when a text first holds the keyword, not at every start:
    most runs meet few of them."""
    return compiled(
        keyword
        + r"[a-z0-9_.\-]{0,100}"
        + r"(?:\\*[\"']?[ \t]*(?:[=:!,?+]|\.=)|[\[(>]|[ \t]+[a-z_][a-z0-9_.]*[ \t]*=)"
    )


# Flags take their value after a blank ("--password x"); so does "Bearer x".
_FLAG_HIT_RE = lazy(r"-(?<!\S-)-?[a-z0-9_.\-]*?(?:" + "|".join(_KEYWORDS) + r")[a-z0-9_.\-]*[ \t]")
_BEARER_HIT_RE = lazy(r"bearer[ \t]")
_NAME_RE = lazy(r"[A-Za-z0-9_.\-]{1,101}")
# A separator after a name (header, assignment); a closing quote, escaped or not, may come
# first (JSON, JSON inside a string).
# A quoted name, a comma and a quoted value is a pair too: ("AccountKey", "x"), {"password", "x"}.
_SEPARATOR_AFTER_RE = lazy(_AFTER_NAME)
# The tool's own finding ids ("supervisor.sshd-no-host-keys:sshd"): section, a dot, a
# kebab-case rule, a colon and the subject. Never a secret, whatever words the rule has.
_FINDING_ID_RE = lazy(r"[a-z][a-z0-9_]*\.[a-z0-9]+(?:-[a-z0-9]+)+:")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/")


def _inside_finding_id(s: str, start: int) -> bool:
    """Whether the name at `start` is part of a finding id ("supervisor.x-y:subject",
    "ports.not-listening:token-server:8080"): what precedes it, back to a blank or a quote,
    starts with one."""
    back = start
    while back > 0 and start - back < 200 and s[back - 1] in _ID_CHARS:
        back -= 1
    return _FINDING_ID_RE.match(s, back) is not None


# Where an extra name pattern is configured, any name may be secret: names are then found from
# what follows them, in C: a separator (searched in the reversed text, where it comes first),
# a blank after a flag, ">" after an XML tag. Only those the extra patterns match are tried.
_REVERSED_NAME_BEFORE_SEPARATOR_RE = lazy(r"[=:][ \t]*[\"']?\\?(?P<name>[A-Za-z0-9_.\-]{1,101})")
_ANY_FLAG_RE = lazy(r"-(?<!\S-)-?(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)[ \t]")
_ANY_TAG_RE = lazy(r"<(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})>")

# Authorization-like headers: the scheme word stays, the rest of the line (or string) goes.
_HEADER_RE = lazy(
    r"(?<![A-Za-z0-9_\]-])(?P<keep>(?:(?:proxy-)?authorization|set-cookie|cookie)"
    r"(?P<sep>\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?)"
    r"(?:(?:bearer|basic|token|digest|bot|apikey|negotiate|ntlm|aws4-hmac-sha256)[ \t]+)?)"
    r"(?P<val>[^\r\n\"'\\]+)",
    re.IGNORECASE,
)


def _header(m: re.Match[str]) -> str:
    val = m.group("val")
    if _is_marked(val) or _is_trivial(val) or _is_reference(val.strip()):
        return m.group(0)
    # Keep trailing blanks outside the marker so "…token xyz  " keeps its layout.
    stripped = val.rstrip()
    return m.group("keep") + _mask(stripped) + val[len(stripped) :]


# A bare "Bearer <token>" anywhere (curl traces, Python reprs of headers).
_BEARER_RE = lazy(
    r"(?<![A-Za-z0-9\]])(?P<keep>(?:[Bb]earer|BEARER)[ \t]+)(?P<val>[A-Za-z0-9\-._~+/]+=*)"
)


def _bearer(m: re.Match[str]) -> str:
    val = m.group("val")
    # "Bearer authentication is required" is prose: a token is long, or has digits.
    if len(val) < 8 or (len(val) < 20 and not any(c.isdigit() for c in val)):
        return m.group(0)
    return m.group("keep") + _mask(val)


# ?token=…&sig=… in URLs; ";" also starts a parameter (connection strings, matrix params).
# A bare value is judged on its first characters: a line of "key=key=key=..." must not cost
# the length of the line at each of its names.
_BARE_JUDGED = 256
_QUERY_VALUE = r"[^&;#\s\"'<>`)\]\\]"
_QUERY_RE = lazy(
    r"(?P<keep>[?&;](?P<name>[A-Za-z][A-Za-z0-9_.\-]{0,100})=)"
    rf"(?P<val>{_QUERY_VALUE}{{1,{_BARE_JUDGED}}})"  # judged on its start, like a bare value
)
_QUERY_REST_RE = lazy(_QUERY_VALUE + "*")
# Query parameters that are credentials although their name would not say so.
_QUERY_SECRET_NAMES = frozenset({"sig", "signature", "x-amz-signature", "x-goog-signature"})

# --password VALUE, -passwd VALUE, --token VALUE (the "=" and ":" forms are assignments).
_FLAG_RE = lazy(
    r"(?<!\S)(?P<flag>--?[A-Za-z][A-Za-z0-9_.\-]*)(?P<sp>[ \t]+)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"'\-=:][^\s\"']*)"
)

# name=value, name: value, "name": "value", name => value, export NAME=value,
# including JSON escaped inside a string (\"password\": \"x\"). The value is a quoted string,
# a shell variable reference ${NAME} (kept by _assignment), or a bare word that ends at
# blanks, quotes and the separators of the surrounding syntax (, ; & brackets).
_ASSIGN_RE = lazy(
    r"(?<![A-Za-z0-9_\]])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})"
    r"(?P<sep>" + _TYPE_ANNOTATION + "|"
    # YAML block scalar: "token: |" and the value on the next, indented line
    r"[ \t]*:[ \t]*[|>][+\-]?[ \t]*\r?\n[ \t]+|"
    r"(?:\\*[\"']?|\[[0-9]*\])[ \t]*(?:=>|:{1,3}=|\?\?=|[.?+]=|[!=]==?|[=:])[ \t]*"
    r"|[\"'][ \t]*,[ \t]*(?=[\"'])|(?:\.[A-Za-z_][A-Za-z0-9_]*)?\([ \t]*(?=[\"'`]))"
    r"(?P<val>@?\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|`[^`\n]*`"
    r"|\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\"|\\{2,}[\"'][^\"'\\\n]*\\{2,}[\"']"
    r"|\$\{[^}\s\"']*\}"
    rf"|[^\s\"'`,;&<>(){{}}\[\]\\=][^\s\"'`\\]{{0,{_BARE_JUDGED - 1}}})"
)
# The rest of a bare value longer than what is judged (a long token is masked whole).
_BARE_REST_RE = lazy(r"[^\s\"'`\\]*")
# {"name": "DB_PASSWORD", "value": "x"} or <entry name="token" value="x"/> inside a text (obj()
# sees the same pairs in data).
_NAME_VALUE_PAIR_RE = lazy(
    r"(?<![A-Za-z0-9_])(?P<keep>[\"']?(?:name|key)[\"']?[ \t]*[:=][ \t]*(?P<q>[\"'])"
    r"(?P<name>[^\"'\n]{1,100})(?P=q)[ \t]*,?\s{0,20}[\"']?value[\"']?[ \t]*[:=][ \t]*)"
    r"(?P<val>\"[^\"\n]*\"|'[^'\n]*')"
)
# "value" == password: a comparison with the name after the value.
_VALUE_BEFORE_NAME_RE = lazy(
    r"(?P<val>\"[^\"\n]+\"|'[^'\n]+')(?P<sep>[ \t]*[!=]==?[ \t]*)"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.]{0,100})"
)
# Where a bare value ends: before the next "name=" of a connection string or a query
# ("Password=x;Database=y", "password=x&user=y", "pw=x,user=y"); otherwise ; & , belong to it.
_NEXT_PARAMETER_RE = lazy(r"[;&,](?=[A-Za-z_][A-Za-z0-9_.\-]*=)")
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _bare_value_end(val: str) -> int:
    """The length of a bare (unquoted) value: up to the next parameter, without a trailing
    "," or ";" and without closing brackets it did not open ("f(password=x)")."""
    cut = _NEXT_PARAMETER_RE.search(val)
    end = cut.start() if cut else len(val)
    tag = val.find("</", 0, end)  # <password>x</password> is the XML rule's; x</td> ends here
    if tag > 0:
        end = tag
    while end > 1:
        last = val[end - 1]
        if last in ",;" or (
            last in _CLOSERS and val.count(_CLOSERS[last], 0, end) < val.count(last, 0, end)
        ):
            end -= 1
        else:
            break
    return end


# "name: value more words": a colon in a sentence, not an assignment, when a word follows.
_PROSE_AFTER_RE = lazy(r"[ \t]+[a-z]{2,}\b")
# <password>VALUE</password>
_XML_RE = lazy(r"<(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})>(?P<val>[^<]{1,1000})</(?P=name)>")


def _masked_part(original: str, replacement: str) -> str:
    """What `replacement` masked of `original`: what is left between their common ends."""
    head = 0
    limit = min(len(original), len(replacement))
    while head < limit and original[head] == replacement[head]:
        head += 1
    tail = 0
    while tail < limit - head and original[-1 - tail] == replacement[-1 - tail]:
        tail += 1
    return original[head : len(original) - tail]


def _requote(raw: str, masked: str) -> str:
    """`masked` in the quotes `raw` had."""
    if raw.startswith('@"') and raw.endswith('"') and len(raw) >= 3:
        return '@"' + masked + '"'
    if raw.startswith("\\\\"):
        nested = _NESTED_QUOTED_RE.fullmatch(raw)
        if nested:
            return nested.group("q") + masked + nested.group("q")
    for quote in ('\\"', '"', "'", "`"):
        if len(raw) >= 2 * len(quote) and raw.startswith(quote) and raw.endswith(quote):
            return quote + masked + quote
    return masked


def _lower_same_length(s: str) -> str:
    """`s` lower-cased with every index unchanged (str.lower may lengthen a few letters)."""
    lowered = s.lower()
    if len(lowered) == len(s):
        return lowered
    return s.encode("ascii", "replace").decode("ascii").lower()  # one "?" per other character


MEMO_ENTRIES = 20_000  # strings remembered per redactor (a report holds a few thousand)
MEMO_MAX_CHARS = 16_384  # longer ones (a whole document) are redacted afresh each time


class Redactor:
    """Masks secrets in text and in JSON-able data.

    `extra_names`: regexes (searched case-insensitively) that make a variable name secret.
    `extra_patterns`: regexes masked wholesale wherever they match (flags as written).
    `secret_values`: values known to be secret (those of secret-named variables); each one
    of at least MIN_VALUE_LENGTH characters that is not a switch is masked wherever it
    appears verbatim (case-sensitive). Boundary rule: a value of 8 characters or more is masked
    even inside a longer token (that token still discloses it); a shorter one only as a whole
    token, i.e. not touching a letter, digit, "_" or "/", nor a "." or "-" that continues
    a word: a password "root" is masked in "password is root." but not in "/root/x",
    "rootfs" or "root.log".
    """

    def __init__(
        self,
        extra_names: Sequence[str] = (),
        extra_patterns: Sequence[str] = (),
        secret_values: Iterable[str] = (),
    ) -> None:
        self._names_re = tuple(re.compile(p, re.IGNORECASE) for p in extra_names)
        self._patterns = tuple(re.compile(p) for p in extra_patterns)
        markers = _marker_text()
        values = {
            v
            for v in secret_values
            if len(v.strip()) >= MIN_VALUE_LENGTH and not _is_trivial(v) and v not in markers
        }
        # Longest first, so a value that contains another is masked whole.
        self._values = tuple(sorted(values, key=lambda v: (-len(v), v)))
        # A run redacts the same report for the Markdown, the JSON, the docs and the commit
        # message: the same strings four times. The rules never change, so the answers don't.
        self._memo: dict[str, str] = {}
        self._index = _rule_index()

    @classmethod
    def from_config(
        cls, config: Config, environments: Iterable[Mapping[str, str]] = ()
    ) -> Redactor:
        """A redactor with the config's extra names and patterns, knowing the values of the
        secret-named variables of `environments`, the supervisor password and the serve token."""
        names = tuple(re.compile(p, re.IGNORECASE) for p in config.redact.names)
        values = [
            value
            for env in environments
            for name, value in env.items()
            if is_secret_name(name, value, names)
        ]
        if config.supervisor.password:
            values.append(config.supervisor.password)
        if config.serve.token:  # never echoed by the server it guards
            values.append(config.serve.token)
        return cls(config.redact.names, config.redact.patterns, values)

    def is_secret_name(self, name: str, value: str | None = None) -> bool:
        """`is_secret_name` with this redactor's extra names."""
        return is_secret_name(name, value, self._names_re)

    # --- text -----------------------------------------------------------------------------

    def text(self, s: str) -> str:
        """`s` with everything secret masked; idempotent, and keeps the number of newlines."""
        done = self._memo.get(s)
        if done is not None:
            return done
        masked = self._text(s)
        if len(self._memo) < MEMO_ENTRIES and len(s) <= MEMO_MAX_CHARS:
            self._memo[s] = masked
        return masked

    def _text(self, s: str) -> str:
        if "PRIVATE KEY" in s:
            s = _PEM_BLOCK_RE.sub(_private_key, s)
            if "-----END" in s:
                s = _mask_orphan_key_ends(s)
        s = self._verbatim(s)
        for pattern in self._patterns:
            s = pattern.sub(_mask_nonempty, s)
        before = s
        lowered = _lower_same_length(s)
        for rule in self._index.candidates(s, lowered):
            s = rule.regex.sub(rule.replace, s)
        present = [k for k in _BLANK_KEYWORDS if k in lowered]
        if present:
            s = _blank_values(s, present)
        if "://" in s:
            s = _URL_USERINFO_RE.sub(_url_userinfo, s)
        if "-u" in s or "--proxy-user" in s:
            s = _USER_FLAG_RE.sub(_user_flag, s)
        if "==" in s or "!=" in s:
            s = _VALUE_BEFORE_NAME_RE.sub(self._value_before_name, s)
        if "value" in s:
            s = _NAME_VALUE_PAIR_RE.sub(self._name_value_pair, s)
        return self._names(s, lowered if s == before else _lower_same_length(s))

    def _verbatim(self, s: str) -> str:
        """The secret values, longest first, by the boundary rule of the class docstring."""
        for value in self._values:
            if value in s:
                if len(value) >= _LONG_VALUE_LENGTH:
                    s = s.replace(value, _mask(value))
                else:
                    s = _short_value_re(value).sub(_mask(value), s)
        return s

    def _names(self, s: str, lowered: str) -> str:
        """Apply the name rules (query, XML, flag, header, bearer, assignment) at each name
        that may be secret, left to right; a name inside an already masked span is skipped.
        `lowered` is `_lower_same_length(s)`."""
        # Most texts hold no keyword at all: found out with one C-level pass per keyword.
        present = list(filter(lowered.__contains__, _KEYWORDS))
        if not present and not self._names_re:
            return s
        hits = [m.start() for k in present for m in _keyword_re(k).finditer(lowered)]
        if present and "-" in lowered:
            hits += [m.start() for m in _FLAG_HIT_RE.finditer(lowered)]
        if "bearer" in lowered:
            hits += [m.start() for m in _BEARER_HIT_RE.finditer(lowered)]
        if self._names_re:
            hits += self._unnamed_candidates(s)
        if not hits:
            return s
        rev = s[::-1]  # to find where a name starts, scanning back from a hit at C speed
        size = len(s)
        starts = set()
        for hit in hits:
            back = _NAME_RE.match(rev, size - hit) if hit else None
            starts.add(size - back.end() if back else hit)
        out: list[str] = []
        masked: list[str] = []
        done = 0
        for start in sorted(starts):
            if start < done:
                continue
            found = self._rule_at(s, start)
            if found is not None:
                begin, end, replacement = found
                out += [s[done:begin], replacement]
                masked.append(_masked_part(s[begin:end], replacement))
                done = end
        if not out:
            return s
        text = "".join(out) + s[done:]
        # A value masked at its name is masked wherever else it appears in the same text
        # ("token = 'x' | 'x'", a password echoed two lines later).
        for value in masked:
            if len(value) >= _LONG_VALUE_LENGTH and value in text and not value.isalpha():
                text = text.replace(value, _mask(value))
        return text

    def _unnamed_candidates(self, s: str) -> list[int]:
        """Starts of names without a keyword that an extra name pattern matches."""
        size = len(s)
        found = [
            (size - m.end("name"), m.group("name")[::-1])
            for m in _REVERSED_NAME_BEFORE_SEPARATOR_RE.finditer(s[::-1])
        ]
        for regex in (_ANY_FLAG_RE, _ANY_TAG_RE):
            found += [(m.start("name"), m.group("name")) for m in regex.finditer(s)]
        return [start for start, name in found if any(p.search(name) for p in self._names_re)]

    def _rule_at(self, s: str, start: int) -> tuple[int, int, str] | None:
        """The first rule that masks something at the name starting at `start`."""
        name = _NAME_RE.match(s, start)
        if name is None:
            return None
        token, end = name.group(), name.end()
        following = s[end : end + 1]
        # Which rules can apply, from the name and what surrounds it; most names go no further.
        if (following == ":" or (start and s[start - 1] == ":")) and _inside_finding_id(s, start):
            return None
        attempts: list[
            tuple[re.Pattern[str], int, Callable[[re.Match[str]], str | tuple[str, int]]]
        ] = []
        before = s[start - 1 : start] if start else ""
        if following == "=" and before and before in "?&;":
            attempts.append((_QUERY_RE, start - 1, self._query))
        if following == ">" and before == "<":
            attempts.append((_XML_RE, start - 1, self._xml))
        # The other rules want the name from its first letter ("--password=x", ".password").
        letter = start + len(token) - len(token.lstrip("-.0123456789"))
        if following in (" ", "\t"):
            if token[0] == "-":
                attempts.append((_FLAG_RE, start, self._flag))
            elif token.lower() == "bearer":
                attempts.append((_BEARER_RE, letter, _bearer))
        if _SEPARATOR_AFTER_RE.match(s, end):
            attempts += [(_HEADER_RE, letter, _header), (_ASSIGN_RE, letter, self._assignment)]
        for regex, at, replace in attempts:
            m = regex.match(s, at)
            if m is not None:
                result = replace(m)
                replacement, stop = result if isinstance(result, tuple) else (result, m.end())
                if replacement != s[m.start() : stop]:
                    return m.start(), stop, replacement
                if regex is _HEADER_RE:
                    return None  # "Cookie: Basic [redacted]" is done; not an assignment too
        return None

    def _query(self, m: re.Match[str]) -> str | tuple[str, int]:
        name, val = m.group("name"), m.group("val")
        if _is_marked(val) or not (
            name.lower() in _QUERY_SECRET_NAMES or self.is_secret_name(name, val)
        ):
            return m.group(0)
        rest = _QUERY_REST_RE.match(m.string, m.end())
        stop = rest.end() if rest is not None else m.end()
        return m.group("keep") + _mask(m.string[m.start("val") : stop]), stop

    def _flag(self, m: re.Match[str]) -> str:
        val = m.group("val")
        plain = _unquote(val)
        # "--key /etc/ssl/x.key" names a file, "-passwd $VNC_PW" where it comes from; "--auth to
        # enable" is prose: too short to matter.
        if (
            _is_marked(val)
            or len(plain) < MIN_VALUE_LENGTH
            or _looks_like_path(plain)
            or _is_reference(plain)
            or not self.is_secret_name(m.group("flag").lstrip("-"), val)
        ):
            return m.group(0)
        return m.group("flag") + m.group("sp") + _requote(val, MARKER)

    def _assignment(self, m: re.Match[str]) -> str | tuple[str, int]:
        val, sep = m.group("val"), m.group("sep")
        stop = m.end()
        goes_on = False  # a bare value longer than what is judged of it
        if val[0] not in "\"'\\" and not (val.startswith("${") and val.endswith("}")):
            stop = m.start("val") + _bare_value_end(val)
            goes_on = len(val) == _BARE_JUDGED and stop == m.end()
            val = m.string[m.start("val") : stop]
            # "passwd: password expiry information changed." is a sentence.
            if (
                ":" in sep
                and "=" not in sep
                and _PROSE_AFTER_RE.match(m.string, stop)
                and _is_wordish(val)
            ):
                return m.group(0)
        name = m.group("name")
        if sep == ":" and "." in name and _is_wordish(val):
            return m.group(0)  # Maven coordinates: io.jsonwebtoken:jjwt-jackson-0.11.2
        if val.startswith("`") and " " in val:
            return m.group(0)  # KEY=`etcdctl get /x`: where the shell gets it from
        if "," in sep and _is_wordish(_unquote(val)):
            return m.group(0)  # a list of names: ["api_key", "secret_key"]
        if _is_marked(val) or not self.is_secret_name(name, val):
            return m.group(0)
        if goes_on:  # masked whole, to where the value really ends
            rest = _BARE_REST_RE.match(m.string, stop)
            end = rest.end() if rest is not None else stop
            stop = m.start("val") + _bare_value_end(m.string[m.start("val") : end])
        return name + sep + _requote(val, MARKER), stop

    def _name_value_pair(self, m: re.Match[str]) -> str:
        val = m.group("val")
        if _is_marked(val) or not self.is_secret_name(m.group("name"), _unquote(val)):
            return m.group(0)
        return m.group("keep") + _requote(val, MARKER)

    def _value_before_name(self, m: re.Match[str]) -> str:
        val, name = m.group("val"), m.group("name")
        if _is_marked(val) or not self.is_secret_name(name, _unquote(val)):
            return m.group(0)
        return _requote(val, MARKER) + m.group("sep") + name

    def _xml(self, m: re.Match[str]) -> str:
        name, raw = m.group("name"), m.group("val")
        val = raw.strip()
        if not val or _is_marked(val) or not self.is_secret_name(name, val):
            return m.group(0)
        head = raw[: len(raw) - len(raw.lstrip())]  # the layout around the value stays
        tail = raw[len(raw.rstrip()) :]
        return f"<{name}>{head}{_mask(val)}{tail}</{name}>"

    # --- data -----------------------------------------------------------------------------

    def obj(self, o: Any) -> Any:
        """A deep copy of JSON-able data with secrets masked.

        A string under a secret-looking key is replaced whole; so is the "value" of a
        {"name": NAME, "value": VALUE} pair whose NAME is secret. A list of strings is redacted
        as one text (a PEM block spread over log lines is seen whole). Keys are kept.
        """
        if isinstance(o, str):
            return self.text(o)
        if isinstance(o, Mapping):
            return self._mapping(o)
        if isinstance(o, (list, tuple)):
            if o and all(isinstance(item, str) for item in o):
                lines = self._lines(list(o))
            else:
                lines = [self.obj(item) for item in o]
            return tuple(lines) if isinstance(o, tuple) else lines
        return o

    def _mapping(self, o: Mapping[Any, Any]) -> dict[Any, Any]:
        pair_name = next((o[k] for k in ("name", "key") if isinstance(o.get(k), str)), None)
        masked_value = (
            isinstance(o.get("value"), str)
            and pair_name is not None
            and self.is_secret_name(pair_name, o["value"])
        )
        out: dict[Any, Any] = {}
        for key, value in o.items():
            if isinstance(value, str) and (
                (isinstance(key, str) and self.is_secret_name(key, value))
                or (key == "value" and masked_value)
            ):
                out[key] = _mask(value)
            else:
                out[key] = self.obj(value)
        return out

    def _lines(self, items: list[str]) -> list[str]:
        """Redact lines as one text, then cut it back into as many items (an item may hold
        several lines of its own: regroup by each item's line count)."""
        redacted = self.text("\n".join(items)).split("\n")
        counts = [item.count("\n") + 1 for item in items]
        if len(redacted) != sum(counts):  # pragma: no cover - every rule keeps newlines
            return [self.text(item) for item in items]
        out: list[str] = []
        at = 0
        for count in counts:
            out.append("\n".join(redacted[at : at + count]))
            at += count
        return out


def _mask_nonempty(m: re.Match[str]) -> str:
    # A user pattern that matches the empty string must not sprinkle markers everywhere.
    return _mask(m.group(0)) if m.group(0) else ""


@functools.lru_cache(maxsize=256)
def _short_value_re(value: str) -> re.Pattern[str]:
    """A short secret value as a whole token: not touching a letter, digit, "_" or "/", nor
    a "." or "-" that continues a word. The literal comes first, for speed."""
    lit = re.escape(value)
    return re.compile(
        f"{lit}(?<![A-Za-z0-9_/\\]]{lit})(?<![A-Za-z0-9\\]][.\\-]{lit})"
        r"(?![A-Za-z0-9_/\[]|[.\-][A-Za-z0-9\[])"
    )
