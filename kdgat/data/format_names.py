"""The names of the log formats kdgat reads, with the shape of each: light enough for `--help`."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "candump": "candump -l log '(1498258064.346851) can0 156#00FF' or candump's screen output "
    "'(000.000000)  can0  18FCF200   [8]  E1 FF 00 ...' (-ta/-td/-tz, or no timestamp)",
    "asc": "Vector ASCII log (python-can)",
    "blf": "Vector binary logging format (python-can)",
    "trc": "PEAK PCAN-View trace (python-can)",
    "canlog_csv": "python-can CSV 'timestamp,arbitration_id,extended,remote,error,dlc,data'",
    "hcrl": "HCRL Car-Hacking CSV 'Timestamp,ID,DLC,DATA0..7,Flag R/T'",
    "hcrl_txt": "HCRL normal_run_data.txt 'Timestamp: T ID: XXXX 000 DLC: N XX ..'",
    "cantt": "can-train-and-test CSV 'timestamp,arbitration_id,data_field,attack'",
}


def format_help() -> str:
    """Every format on its own line, for a command's help text."""
    return "\n\n".join(f"{name}: {shape}" for name, shape in FORMATS.items())
