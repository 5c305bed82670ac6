"""The CLI's exit codes, one definition for every subcommand (README, "Exit codes")."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0  # clean: compliant, not applicable, or every finding fixed or exempt
EXIT_FINDINGS: Final = 1  # something needs action: a finding, a refusal
EXIT_ERROR: Final = 2  # bad input, bad settings, or AWS could not be asked
