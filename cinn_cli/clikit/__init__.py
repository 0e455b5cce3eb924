"""What every command shares: options (``options``), turning user errors into clean exits
(``errors``), and running a batch job (``runs``: device, output folder, signals). Below the
tasks, so each task's folder defines its own commands with them; imports click, never torch
at module level."""
