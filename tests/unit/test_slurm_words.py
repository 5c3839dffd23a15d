"""How Aura reads Slurm's answers (squeue's lines, scontrol's ExitCode and JobState) and writes its
requests (--time), and how a checklist item says where it runs."""

from __future__ import annotations

from aura.brain.taskfile import parse_items
from aura.runtime import slurm


def test_squeue_lines_become_job_states_with_the_reason_and_the_node() -> None:
    out = "12|PENDING|Resources|\n13|RUNNING|None|node7\n14|COMPLETING|None|node7\nbad line\n"
    states = slurm.parse_queue(out)
    assert sorted(states) == ["12", "13", "14"]
    assert states["12"].pending and states["12"].reason == "Resources" and states["12"].node == ""
    assert states["13"].running and states["13"].reason == "" and states["13"].node == "node7"
    assert states["14"].running  # still ending: its exit record may not be there yet


def test_a_job_that_ended_without_an_exit_record_gets_slurms_state_and_exit_code() -> None:
    timeout = slurm.ended_exit({"JobId": "9", "JobState": "TIMEOUT", "ExitCode": "0:15"})
    assert timeout["signal"] == 15 and timeout["exit_code"] is None and timeout["slurm_state"] == "TIMEOUT"
    assert "time limit" in timeout["error"] and "job 9" in timeout["error"]
    failed = slurm.ended_exit({"JobId": "10", "JobState": "NODE_FAIL", "ExitCode": "1:0"})
    assert failed["exit_code"] == 1 and failed["signal"] is None and "node failed" in failed["error"]


def test_time_requests_round_up_to_the_minute_in_slurms_format() -> None:
    assert slurm.duration(1) == "0-00:01:00"
    assert slurm.duration(61) == "0-00:02:00"
    assert slurm.duration(25 * 3600 + 1) == "1-01:01:00"


def test_a_checklist_item_says_where_it_runs_outside_its_backticks() -> None:
    items = parse_items(
        "# Goal\n\n- [ ] train `python train.py` on slurm creates `m.ckpt`\n"
        "- [ ] report `echo on slurm > r.txt`\n- [ ] plot `make plot` on local\n"
    )
    assert [i.executor for i in items] == ["slurm", None, "local"]
