"""Secrets never leave the box: every output (report, JSON, context, docs, git) passes here.

Two layers work together:

* names: `is_secret_name` decides whether a variable (or dict key, header, flag) holds a
  secret, from the words of its name and a glance at its value;
* text: `Redactor.text` masks anything that looks like a credential wherever it appears:
  private-key blocks, known token formats, passwords in URLs, bearer/basic authorization,
  secret query parameters, `name=value` assignments with a secret name, and the verbatim
  values of the container's secret variables.

A masked value becomes `MARKER`, or `[redacted:KIND]` for a known format. Nothing of the
secret is kept (no prefix), and every replacement keeps the number of newlines of what it
replaced, so line-oriented callers (log tails redacted as one text) keep their line count.
Redacting is idempotent: markers are never masked again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from healthcheck.config import Config

MARKER = "[redacted]"


def _words(text: str) -> tuple[str, ...]:
    """Blank-separated words: long constant lists stay compact and readable."""
    return tuple(text.split())


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Kinds used in "[redacted:KIND]" labels. Listed so that verbatim secret values that happen to
# be part of a marker ("dact", "github") can be refused: masking them would break idempotence.
KINDS = _words(
    "private-key github-token gitlab-token huggingface-token anthropic-key openai-key"
    " slack-token slack-webhook discord-webhook aws-access-key-id google-api-key google-oauth"
    " stripe-key npm-token pypi-token docker-token replicate-token jwt"
)
_MARKER_TEXT = " ".join([MARKER, *(f"[redacted:{kind}]" for kind in KINDS)])

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
    " PRIVATE DSN PAT JWT BEARER HMAC WEBHOOK WEBHOOKS"
)
# Strong enough to count inside a longer word: MYSQLPASSWORD, HFTOKEN, ACCESSTOKEN.
_SECRET_SUBSTRINGS = _words(
    "PASSWORD PASSWD PASSPHRASE SECRET APIKEY TOKEN CREDENTIAL PRIVATEKEY ACCESSKEY"
)
# Words that contain a strong substring but say nothing secret (TOKENIZERS_PARALLELISM,
# VNC_PASSWORDLESS): dropped before matching.
_HARMLESS_WORD_RE = re.compile(r"\w*TOKENI[SZ]\w*|\w*(?:PASSWORD|PASSWD)LESS|SECRETARY\w*")
# Whole names that look secret but are well-known plumbing, whatever their value.
_FALSE_FRIEND_NAME_RE = re.compile(
    r"SSH_AUTH_SOCK|XAUTHORITY|XAUTHLOCALHOSTNAME|XDG_SESSION_\w+|DESKTOP_SESSION"
    r"|DBUS_SESSION_BUS_\w+|SESSION_MANAGER|GPG_AGENT_INFO"
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
# A last word that makes the name about a secret, not the secret itself (AUTH_TYPE, SECRET_NAME,
# TOKEN_USER, PASSWORD_POLICY, PRIVATE_IP). URL is not one: URLs carry credentials.
_METADATA_WORDS = _word_set(
    "TYPE KIND NAME METHOD MODE ALGORITHM USER USERNAME POLICY FORMAT VERSION ENABLED REQUIRED"
    " PROVIDER BACKEND SCOPE SCOPES ISSUER STRATEGY FINGERPRINT IP IPADDR ADDR HOST HOSTNAME"
)

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT_RE = re.compile(r"[^A-Za-z0-9]+")
_NUMBER_RE = re.compile(r"[+-]?\d+(?:\.\d+)?")
_PATH_RE = re.compile(r"(?:~|\.{1,2})?/[^\s:]*(?::(?:~|\.{1,2})?/[^\s:]*)*")
_VAR_REF_RE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})")


def _unquote(value: str) -> str:
    """`value` without blanks around it and without one pair of quotes (\\" " or ')."""
    value = value.strip()
    if len(value) < 2 or value[0] not in "\"'\\":
        return value  # the common case, decided without a loop
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return value[len(quote) : -len(quote)]
    return value


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
        or (secret <= {"KEY", "KEYS"} and not _PUBLIC_WORDS.isdisjoint(words))
        or words[-1] in _METADATA_WORDS
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
    if _looks_like_path(plain) and (not _LOCATION_WORDS.isdisjoint(words) or secret == {"PWD"}):
        return False
    return not (
        _NUMBER_RE.fullmatch(plain)
        and (not _QUANTITY_WORDS.isdisjoint(words) or secret <= {"TOKENS", "KEYS"})
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
_PEM_BLOCK_RE = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
# An END line whose BEGIN was cut off: the base64 lines right above it are key material.
_PEM_END_LINE_RE = re.compile(r"^[ \t]*-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----", re.M)
_BASE64_LINE_RE = re.compile(r"[ \t]*[A-Za-z0-9+/=]+[ \t]*\r?")


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


Replace = Callable[[re.Match[str]], str]


def _kind(kind: str) -> Replace:
    def replace(m: re.Match[str]) -> str:
        return _mask(m.group(0), kind)

    return replace


def _kind_after_prefix(kind: str) -> Replace:
    """Keep group `keep` (a host, a URL prefix), mask group `val`."""

    def replace(m: re.Match[str]) -> str:
        return m.group("keep") + _mask(m.group("val"), kind)

    return replace


def _openai(m: re.Match[str]) -> str:
    # "sk-" + letters only is a word ("sk-learn-contrib-whatever"); keys have digits.
    if not any(c.isdigit() for c in m.group(0)):
        return m.group(0)
    return _mask(m.group(0), "openai-key")


# Boundaries count a marker's brackets as part of a word: "x[redacted]" must not turn into a
# boundary on a second pass that the original "xSECRET" was not on the first (idempotence).
def _token(prefix: str, rest: str, before: str = r"A-Za-z0-9_\]") -> re.Pattern[str]:
    """`prefix` + `rest`, not in the middle of a longer identifier (no [before] char ahead)."""
    lit = re.escape(prefix)
    return re.compile(f"{lit}(?<![{before}]{lit}){rest}")


# (literal triggers, [(regex, replacement)]): the rules of a group run only when one of its
# triggers is in the text; `in` costs a scan of the text, so related formats share one.
_KNOWN_FORMATS: list[tuple[tuple[str, ...], list[tuple[re.Pattern[str], Replace]]]] = [
    (("gh",), [(_token("gh", r"[pousr]_[A-Za-z0-9]{36,255}"), _kind("github-token"))]),
    (
        ("_pat_",),
        [
            (_token("github_pat_", r"[A-Za-z0-9_]{22,255}"), _kind("github-token")),
            (re.compile(r"dckr_pat_[A-Za-z0-9_-]{20,}"), _kind("docker-token")),
        ],
    ),
    (("glpat-",), [(_token("glpat-", r"[A-Za-z0-9_-]{20,}"), _kind("gitlab-token"))]),
    (("hf_",), [(_token("hf_", r"[A-Za-z0-9]{30,}"), _kind("huggingface-token"))]),
    (
        ("sk-",),
        [  # Anthropic first: its keys are also "sk-…"
            (_token("sk-ant-", r"[A-Za-z0-9_-]{20,}"), _kind("anthropic-key")),
            (_token("sk-", r"[A-Za-z0-9_-]{20,}", r"A-Za-z0-9_\-\]"), _openai),
        ],
    ),
    (
        ("xox", "xapp-"),
        [
            (_token("xox", r"[abposre]-[A-Za-z0-9-]{10,}"), _kind("slack-token")),
            (_token("xapp-", r"[A-Za-z0-9-]{10,}"), _kind("slack-token")),
        ],
    ),
    (
        ("hooks",),
        [
            (
                re.compile(
                    r"(?P<keep>hooks\.slack\.com/(?:services|workflows|triggers)/)"
                    r"(?P<val>[A-Za-z0-9/_-]+)"
                ),
                _kind_after_prefix("slack-webhook"),
            ),
            (
                re.compile(r"(?P<keep>discord(?:app)?\.com/api/webhooks/)(?P<val>[A-Za-z0-9/_-]+)"),
                _kind_after_prefix("discord-webhook"),
            ),
        ],
    ),
    (
        ("A",),
        [  # the regex's own literal search is as cheap as four `in` checks
            (
                _token("A", r"(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9\[])", r"A-Za-z0-9\]"),
                _kind("aws-access-key-id"),
            ),
        ],
    ),
    (("AIza",), [(re.compile(r"AIza[0-9A-Za-z_-]{35}"), _kind("google-api-key"))]),
    (
        ("GOCSPX-", "ya29."),
        [
            (re.compile(r"GOCSPX-[A-Za-z0-9_-]{20,}"), _kind("google-oauth")),
            (re.compile(r"ya29\.[0-9A-Za-z_-]{20,}"), _kind("google-oauth")),
        ],
    ),
    (
        ("k_live_", "k_test_", "whsec_"),
        [
            (
                re.compile(r"[rs](?<![A-Za-z0-9_\]][rs])k_(?:live|test)_[0-9A-Za-z]{16,}"),
                _kind("stripe-key"),
            ),
            (_token("whsec_", r"[A-Za-z0-9]{24,}"), _kind("stripe-key")),
        ],
    ),
    (("npm_",), [(_token("npm_", r"[A-Za-z0-9]{36}"), _kind("npm-token"))]),
    (
        ("pypi-",),
        [
            (re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"), _kind("pypi-token")),
        ],
    ),
    (("r8_",), [(_token("r8_", r"[A-Za-z0-9]{37}"), _kind("replicate-token"))]),
    (
        ("eyJ",),
        [
            (
                re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
                _kind("jwt"),
            ),
        ],
    ),
]

# scheme://user:PASSWORD@host: only the password goes. The password may contain "@" (the
# last one before the host ends it). Neither part may run over a marker (idempotence).
_URL_USERINFO_RE = re.compile(
    r"://(?<=[A-Za-z0-9+.\-]://)(?P<user>(?:(?!\[redacted)[^\s:/?#@\"'<>])*)"
    r":(?P<val>(?:(?!\[redacted)[^\s/?#\"'<>])+|\[redacted\])@"
)


def _url_userinfo(m: re.Match[str]) -> str:
    if _is_marked(m.group("val")):
        return m.group(0)
    return f"://{m.group('user')}:{_mask(m.group('val'))}@"


# curl -u user:PASSWORD, --user user:PASSWORD. Neither part may run over a marker.
_USER_FLAG_RE = re.compile(
    r"(?P<keep>-(?<!\S-)(?:u|-user|-proxy-user)(?:[ \t]+|=)[\"']?(?:(?!\[redacted)[^\s:\"'])*:)"
    r"(?P<val>(?:(?!\[redacted)[^\s\"'])+)"
)


def _user_flag(m: re.Match[str]) -> str:
    val = m.group("val")
    # "docker run -u 1000:1000" is a uid:gid, not user:password.
    if _is_marked(val) or _NUMBER_RE.fullmatch(val):
        return m.group(0)
    return m.group("keep") + _mask(val)


# The rules below are about a name (a header, a parameter, a flag, a variable). They are tried
# only at names that contain one of these keywords (in the lower-cased text): every secret
# word and substring above contains one, as do the header and query names below.
_KEYWORDS = _words(
    "pass pw token secret key cred auth cookie session private dsn pat jwt bearer hmac sig webhook"
)
# A keyword, the rest of its name, then what a rule needs after a name: a separator (after a
# closing quote, maybe escaped) or ">" (XML). One regex per keyword, each starting with its
# literal: a literal is searched at C speed, an alternation is not.
_KEYWORD_RES = tuple(
    re.compile(keyword + r"[a-z0-9_.\-]{0,100}(?:\\?[\"']?[ \t]*[=:]|>)") for keyword in _KEYWORDS
)
# Flags take their value after a blank ("--password x"); so does "Bearer x".
_FLAG_HIT_RE = re.compile(
    r"-(?<!\S-)-?[a-z0-9_.\-]*?(?:" + "|".join(_KEYWORDS) + r")[a-z0-9_.\-]*[ \t]"
)
_BEARER_HIT_RE = re.compile(r"bearer[ \t]")
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,101}")
# A separator after a name (header, assignment); a closing quote, escaped or not, may come
# first (JSON, JSON inside a string).
_SEPARATOR_AFTER_RE = re.compile(r"\\?[\"']?[ \t]*[=:]")
# Where an extra name pattern is configured, any name may be secret: names are then found from
# what follows them, in C: a separator (searched in the reversed text, where it comes first),
# a blank after a flag, ">" after an XML tag. Only those the extra patterns match are tried.
_REVERSED_NAME_BEFORE_SEPARATOR_RE = re.compile(
    r"[=:][ \t]*[\"']?\\?(?P<name>[A-Za-z0-9_.\-]{1,101})"
)
_ANY_FLAG_RE = re.compile(r"-(?<!\S-)-?(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)[ \t]")
_ANY_TAG_RE = re.compile(r"<(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})>")

# Authorization-like headers: the scheme word stays, the rest of the line (or string) goes.
_HEADER_RE = re.compile(
    r"(?<![A-Za-z0-9_\]-])(?P<keep>(?:(?:proxy-)?authorization|set-cookie|cookie)"
    r"(?P<sep>\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?)"
    r"(?:(?:bearer|basic|token|digest|bot|apikey|negotiate|ntlm|aws4-hmac-sha256)[ \t]+)?)"
    r"(?P<val>[^\r\n\"'\\]+)",
    re.IGNORECASE,
)


def _header(m: re.Match[str]) -> str:
    val = m.group("val")
    if _is_marked(val) or _is_trivial(val):
        return m.group(0)
    # Keep trailing blanks outside the marker so "…token xyz  " keeps its layout.
    stripped = val.rstrip()
    return m.group("keep") + _mask(stripped) + val[len(stripped) :]


# A bare "Bearer <token>" anywhere (curl traces, Python reprs of headers).
_BEARER_RE = re.compile(
    r"(?<![A-Za-z0-9\]])(?P<keep>(?:[Bb]earer|BEARER)[ \t]+)(?P<val>[A-Za-z0-9\-._~+/]+=*)"
)


def _bearer(m: re.Match[str]) -> str:
    val = m.group("val")
    # "Bearer authentication is required" is prose: a token is long, or has digits.
    if len(val) < 8 or (len(val) < 20 and not any(c.isdigit() for c in val)):
        return m.group(0)
    return m.group("keep") + _mask(val)


# ?token=…&sig=… in URLs; ";" also starts a parameter (connection strings, matrix params).
_QUERY_RE = re.compile(
    r"(?P<keep>[?&;](?P<name>[A-Za-z][A-Za-z0-9_.\-]{0,100})=)(?P<val>[^&;#\s\"'<>`)\]\\]+)"
)
# Query parameters that are credentials although their name would not say so.
_QUERY_SECRET_NAMES = frozenset({"sig", "signature", "x-amz-signature", "x-goog-signature"})

# --password VALUE, -passwd VALUE, --token VALUE (the "=" and ":" forms are assignments).
_FLAG_RE = re.compile(
    r"(?<!\S)(?P<flag>--?[A-Za-z][A-Za-z0-9_.\-]*)(?P<sp>[ \t]+)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"'\-=:][^\s\"']*)"
)

# name=value, name: value, "name": "value", name => value, export NAME=value,
# including JSON escaped inside a string (\"password\": \"x\"). The value is a quoted string,
# a shell variable reference ${NAME} (kept by _assignment), or a bare word that ends at
# blanks, quotes and the separators of the surrounding syntax (, ; & brackets).
_ASSIGN_RE = re.compile(
    r"(?<![A-Za-z0-9_\]])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})"
    r"(?P<sep>\\?[\"']?[ \t]*(?:=>|[=:])[ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\""
    r"|\$\{[^}\s\"']*\}"
    r"|[^\s\"'`,;&<>(){}\[\]\\=][^\s\"'`,;&<>(){}\[\]\\]*)"
)
# <password>VALUE</password>
_XML_RE = re.compile(r"<(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,100})>(?P<val>[^<\n]+)</(?P=name)>")


def _requote(raw: str, masked: str) -> str:
    """`masked` in the quotes `raw` had."""
    for quote in ('\\"', '"', "'"):
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
        values = {
            v
            for v in secret_values
            if len(v.strip()) >= MIN_VALUE_LENGTH and not _is_trivial(v) and v not in _MARKER_TEXT
        }
        # Longest first, so a value that contains another is masked whole.
        self._values = tuple(sorted(values, key=lambda v: (-len(v), v)))
        # A run redacts the same report for the Markdown, the JSON, the docs and the commit
        # message: the same strings four times. The rules never change, so the answers don't.
        self._memo: dict[str, str] = {}

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
            s = _PEM_BLOCK_RE.sub(_kind("private-key"), s)
            if "-----END" in s:
                s = _mask_orphan_key_ends(s)
        s = self._verbatim(s)
        for pattern in self._patterns:
            s = pattern.sub(_mask_nonempty, s)
        for triggers, rules in _KNOWN_FORMATS:
            if any(t in s for t in triggers):
                for regex, replace in rules:
                    s = regex.sub(replace, s)
        if "://" in s:
            s = _URL_USERINFO_RE.sub(_url_userinfo, s)
        if "-u" in s or "--proxy-user" in s:
            s = _USER_FLAG_RE.sub(_user_flag, s)
        return self._names(s)

    def _verbatim(self, s: str) -> str:
        """The secret values, longest first, by the boundary rule of the class docstring."""
        for value in self._values:
            if value in s:
                if len(value) >= _LONG_VALUE_LENGTH:
                    s = s.replace(value, _mask(value))
                else:
                    s = _short_value_re(value).sub(_mask(value), s)
        return s

    def _names(self, s: str) -> str:
        """Apply the name rules (query, XML, flag, header, bearer, assignment) at each name
        that may be secret, left to right; a name inside an already masked span is skipped."""
        lowered = _lower_same_length(s)
        hits = [m.start() for regex in _KEYWORD_RES for m in regex.finditer(lowered)]
        if "-" in lowered:
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
        done = 0
        for start in sorted(starts):
            if start < done:
                continue
            found = self._rule_at(s, start)
            if found is not None:
                begin, end, replacement = found
                out += [s[done:begin], replacement]
                done = end
        return "".join(out) + s[done:] if out else s

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
        attempts: list[tuple[re.Pattern[str], int, Replace]] = []
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
                replacement = replace(m)
                if replacement != m.group(0):
                    return m.start(), m.end(), replacement
                if regex is _HEADER_RE:
                    return None  # "Cookie: Basic [redacted]" is done; not an assignment too
        return None

    def _query(self, m: re.Match[str]) -> str:
        name, val = m.group("name"), m.group("val")
        if _is_marked(val) or not (
            name.lower() in _QUERY_SECRET_NAMES or self.is_secret_name(name, val)
        ):
            return m.group(0)
        return m.group("keep") + _mask(val)

    def _flag(self, m: re.Match[str]) -> str:
        val = m.group("val")
        plain = _unquote(val)
        # "--key /etc/ssl/x.key" names a file, "-passwd $VNC_PW" where it comes from; "--auth to
        # enable" is prose: too short to matter.
        if (
            _is_marked(val)
            or len(plain) < MIN_VALUE_LENGTH
            or _looks_like_path(plain)
            or _VAR_REF_RE.fullmatch(plain)
            or not self.is_secret_name(m.group("flag").lstrip("-"), val)
        ):
            return m.group(0)
        return m.group("flag") + m.group("sp") + _requote(val, MARKER)

    def _assignment(self, m: re.Match[str]) -> str:
        val = m.group("val")
        if (
            _is_marked(val)
            or _VAR_REF_RE.fullmatch(_unquote(val))  # "password=$VNC_PW" says where it comes from
            or not self.is_secret_name(m.group("name"), val)
        ):
            return m.group(0)
        return m.group("name") + m.group("sep") + _requote(val, MARKER)

    def _xml(self, m: re.Match[str]) -> str:
        name, val = m.group("name"), m.group("val")
        if _is_marked(val) or not self.is_secret_name(name, val):
            return m.group(0)
        return f"<{name}>{MARKER}</{name}>"

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
