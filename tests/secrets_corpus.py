"""Obviously fake, format-valid secrets for redaction tests, shared with end-to-end tests.

Every value contains the literal "FAKE", so a test can also assert that no piece of a secret
survives (`"FAKE" not in output`) as long as its own surrounding text does not say FAKE.

* FAKE_SECRETS: self-identifying formats, masked wherever they appear (plant them anywhere:
  log lines, env values, JSON); EXPECTED_KIND names the "[redacted:KIND]" each one becomes.
* SECRET_ENV: secret-named variables whose values only their name (or their verbatim
  propagation through `Redactor.from_config(config, [environment])`) gives away.
* CONTEXT_SECRETS: lines where the context makes the secret (URL password, bearer header,
  token query parameter, assignments), with the secret they hold.
"""

from __future__ import annotations

_F = "FAKEfake0123456789"  # 18 characters of alphanumerics, clearly not random

FAKE_PRIVATE_KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAAFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE",
        "FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE",
        "FAKEFAKEFAKEFAKEFAKEFAKEFAKE==",
        "-----END OPENSSH PRIVATE KEY-----",
    ]
)

FAKE_SECRETS: dict[str, str] = {
    "github-classic": "ghp_" + _F + _F,  # ghp_ + 36
    "github-fine-grained": "github_pat_11FAKEFAKE0" + _F + "_" + _F + _F + "FAKEfake0123",
    "gitlab": "glpat-" + _F + "FA",
    "huggingface": "hf_" + _F + "FAKEfake0123456",
    "openai-project": "sk-proj-" + _F + _F + "FAKE",
    "openai-legacy": "sk-" + _F + _F + "FAKEfake0123",
    "anthropic": "sk-ant-api03-" + _F + _F + "-FAKEfakeAA",
    "slack-bot": "xoxb-0000000000-0000000000000-FAKEfakeFAKEfakeFAKEfake",
    "slack-webhook": "https://hooks.slack.com/services/T00000000/B00000000/FAKEfakeFAKEfakeFAKE",
    "aws-access-key-id": "AKIAFAKEFAKEFAKEFAKE",
    "aws-session-key-id": "ASIAFAKEFAKEFAKE0123",
    "google-api-key": "AIza" + _F + "FAKEfake012345678",  # AIza + 35
    "stripe": "sk_live_" + _F + "FAKE",
    "npm": "npm_" + _F + _F,  # npm_ + 36
    "pypi": "pypi-AgEIcHlwaS5vcmc" + _F + _F + _F + "FAKE",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJGQUtFIiwibm90ZSI6Im5vdCBhIHJlYWwgdG9rZW4ifQ.FAKEfakeSignature0123456789",
    "docker": "dckr_pat_" + _F + "FAKE",
    "private-key": FAKE_PRIVATE_KEY,
}

EXPECTED_KIND: dict[str, str] = {
    "github-classic": "github-token",
    "github-fine-grained": "github-token",
    "gitlab": "gitlab-token",
    "huggingface": "huggingface-token",
    "openai-project": "openai-key",
    "openai-legacy": "openai-key",
    "anthropic": "anthropic-key",
    "slack-bot": "slack-token",
    "slack-webhook": "slack-webhook",
    "aws-access-key-id": "aws-access-key-id",
    "aws-session-key-id": "aws-access-key-id",
    "google-api-key": "google-api-key",
    "stripe": "stripe-key",
    "npm": "npm-token",
    "pypi": "pypi-token",
    "jwt": "jwt",
    "docker": "docker-token",
    "private-key": "private-key",
}

SECRET_ENV: dict[str, str] = {
    "VNC_PW": "FAKEvncPassw0rd",
    "JUPYTER_TOKEN": "FAKEjupyter0123456789abcdef",
    "DB_PASSWORD": "FAKE-db-pass!42",
    "AWS_SECRET_ACCESS_KEY": "FAKEfakeFAKEfake/0123456789+FAKEfakeFAKE",
    "SENTRY_DSN": "https://FAKEpublic0123@o0.ingest.example.invalid/1",
    "CONTAINER_API_KEY": "FAKE0123456789abcdef0123456789abcdef",
}

CONTEXT_SECRETS: dict[str, tuple[str, str]] = {
    "url-password": ("DATABASE_URL=postgres://app:FAKEpg-Passw0rd@db:5432/app", "FAKEpg-Passw0rd"),
    "mongodb-srv": (
        "mongodb+srv://admin:FAKEmongo0123@cluster0.example.invalid/db",
        "FAKEmongo0123",
    ),
    "bearer-header": (
        "curl -H 'Authorization: Bearer FAKEbearer0123456789' https://api.invalid",
        "FAKEbearer0123456789",
    ),
    "basic-header": ("Authorization: Basic FAKEbasicRkFLRTpGQUtF==", "FAKEbasicRkFLRTpGQUtF=="),
    "token-query": ("http://127.0.0.1:8080/lab?token=FAKEjupyterQuery0123", "FAKEjupyterQuery0123"),
    "password-assignment": ("password=FAKEpl41n", "FAKEpl41n"),
    "json-password": ('{"user": "admin", "password": "FAKE json pass"}', "FAKE json pass"),
    "export": ("export VNC_PW=FAKEexported1", "FAKEexported1"),
    "aws-secret-ini": (
        "aws_secret_access_key = FAKEfakeFAKEfake/0123456789+FAKEfakeFAKE",
        "FAKEfakeFAKEfake/0123456789+FAKEfakeFAKE",
    ),
    "flag": ("x11vnc -display :1 -passwd FAKEflagPw1 -forever", "FAKEflagPw1"),
}
