"""``deputy-guard services`` and the ``--services`` flag: which services the bot guards, and why each.

The catalogue itself is data in ``chalicelib.domain.catalogue``; this module only shows it and reads the flag.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.domain.catalogue import CATALOGUE, Entry

if TYPE_CHECKING:
    from chalicelib.domain.settings import Settings

__all__ = ["SERVICES_FLAG", "add_parser", "add_services_flag", "render", "run_services", "with_services"]

SERVICES_FLAG = "--services"
_HELP = (
    "the services guarded: states (the default), a comma-separated list of names or principals "
    "(states,scheduler), or all; `deputy-guard services` lists them (default: DEPUTY_GUARD_SERVICES, else states)"
)


def add_services_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(SERVICES_FLAG, metavar="all|NAME[,NAME...]", help=_HELP)


def add_parser(commands: Any) -> None:
    listing = commands.add_parser(
        "services",
        help="list the services deputy-guard can guard, with their level and AWS evidence",
        description="List the catalogue: every service principal AWS documents as sending aws:SourceArn or "
        "aws:SourceAccount, its level (enforce: the bot may write the fix; advise: reported with the patch, "
        "never written), the source ARN's service prefix and the AWS page that documents it.",
    )
    listing.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")


def _row(entry: Entry) -> dict[str, Any]:
    return {
        "principal": entry.principal,
        "name": entry.name,
        "level": entry.level.value,
        "arn_prefix": entry.arn_prefix,
        "sends_source_account": entry.sends_source_account,
        "evidence": entry.evidence,
        "note": entry.note,
    }


def render(output: str) -> str:
    if output == "json":
        return json.dumps([_row(entry) for entry in CATALOGUE], indent=2) + "\n"
    width = max(len(entry.principal) for entry in CATALOGUE)
    lines = [f"{'PRINCIPAL':<{width}}  LEVEL    PREFIX         EVIDENCE"]
    for entry in CATALOGUE:
        lines.append(f"{entry.principal:<{width}}  {entry.level.value:<7}  {entry.arn_prefix:<13}  {entry.evidence}")
        lines.append(f"{'':<{width}}  {entry.note}")
    lines.append("")
    lines.append(
        "Select with DEPUTY_GUARD_SERVICES or --services: states (the default), names such as states,scheduler, or all."
    )
    lines.append("Any other service principal is out of scope: AWS documents no pin for it (docs/services.md).")
    return "\n".join(lines) + "\n"


def run_services(args: argparse.Namespace) -> int:
    """``deputy-guard services``: print the catalogue."""
    sys.stdout.write(render(args.format))
    return 0


def with_services(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with ``--services`` applied: the flag wins over DEPUTY_GUARD_SERVICES. Raises SettingsError."""
    from chalicelib.domain.settings import services_setting

    chosen = getattr(args, "services", None)
    return settings if chosen is None else replace(settings, services=services_setting(chosen, SERVICES_FLAG))
