"""Redaction end to end: `healthcheck run` on a real box, its reports and its git commit.

What the tool itself prints (finding ids, paths, hashes, GPU UUIDs, digests, placeholders)
comes out unchanged; planted fake secrets of the newer formats do not come out at all.
"""

from __future__ import annotations

import json

import git
from click.testing import CliRunner

from healthcheck.cli import cli

from secrets_corpus import SECRET_FAMILIES
from support import BUILTIN_NAMES, Box

# The collectors whose output does not depend on this host: disabled in the config (not
# --skip, which makes a partial run that writes no report and commits nothing).
UNSTEADY = ("system", "display", "supervisor", "gpu", "healthcheck")

SURVIVORS = [
    "sshd: Could not load host key: /etc/ssh/ssh_host_rsa_key",
    "HEAD is now at 3f2a9c1e0b7d4a6f8e5c2b1a0d9f8e7c6b5a4d3e",
    "GPU 0: NVIDIA H100 (UUID: GPU-5f2c9a1e-3b7d-4c6a-8e9f-0a1b2c3d4e5f)",
    "pulled nvcr.io/nvidia/pytorch@sha256:" + "0123456789abcdef" * 4,
    "x11vnc -passwd $VNC_PW -forever; password=${password}",
    "seen before: supervisor.sshd-no-host-keys:sshd",
]

# One planted secret per newer format, each in the place it turns up.
PLANTED = {
    family: [item for item in items if any(p in item[1] for p in prefixes)]
    for family, items, prefixes in [
        (f, SECRET_FAMILIES[f], p)
        for f, p in [
            ("source hosting", ("glrt-", "gldt-", "ghs_", "ATBB", "BBDC-")),
            ("ai providers", ("nvapi-", "gsk_", "lsv2_", "pcsk_", "xai-")),
            ("cloud", ("hvs.", "Q~", "tskey-", "dop_v1_", "ops_", "rootly_", "API-")),
            ("payments and commerce", ("FLWSECK",)),
            ("chat and mail", (":AA",)),
        ]
    ]
}
COMMAND_LINES = [
    item
    for item in SECRET_FAMILIES["command lines"]
    if item[0].startswith(("mysql -u", "sshpass", "docker login"))
]


def test_run_masks_new_formats_and_keeps_ids_paths_hashes(box: Box) -> None:
    planted = [item for items in PLANTED.values() for item in items] + COMMAND_LINES
    assert len(planted) >= 15
    lines = SURVIVORS + [line for line, _ in planted]
    (box.logs / "mixed.log").write_text("\n".join(lines) + "\n")
    box.only(*(name for name in BUILTIN_NAMES if name not in UNSTEADY))
    # A service whose name holds a secret word: its finding id must survive every output.
    box.config.write_text(
        box.config.read_text()
        .replace("tail_lines = 5", "tail_lines = 200")
        .replace("ghost = ", "vault-token = ")
    )
    result = CliRunner().invoke(
        cli, ["run", "--config", str(box.config), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    md = (box.workspace / "system_status.md").read_text()
    js = (box.workspace / "system_status.json").read_text()
    message = git.Repo(box.workspace).head.commit.message
    finding_id = f"ports.not-listening:vault-token:{box.closed_port}"
    assert finding_id in [f["id"] for f in json.loads(js)["findings"]]
    assert f"- WARN {finding_id}: " in message
    assert "vault-token" in md
    tail = json.dumps(json.loads(js)["sections"]["logs"])
    for survivor in SURVIVORS:
        assert survivor in md
        assert json.dumps(survivor)[1:-1] in tail
    context = CliRunner().invoke(
        cli,
        ["context", "--config", str(box.config), "--last", "--budget", "20000"],
        catch_exceptions=False,
    )
    assert context.exit_code == 0
    assert finding_id in context.stdout
    assert [survivor in context.stdout for survivor in SURVIVORS] == [True] * len(SURVIVORS)
    for output in (md, js, message, result.stdout, result.stderr, context.stdout, context.stderr):
        for _, secret in planted:
            assert secret not in output
    assert "[redacted:gitlab-token]" in md
    assert "[redacted:nvidia-key]" in md
    assert "[redacted:telegram-token]" in md
