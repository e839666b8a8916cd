"""`lmd batch`: many prompts planned once and drawn across processes, resumable.

from lmd.batch import read_prompts, run_batch
summary = run_batch(read_prompts("prompts.txt"), "out/", planner=planner, repeats=2)
print("\\n".join(summary.lines()))
"""

from lmd.batch.inputs import BENCHMARK, BatchPrompt, read_prompts
from lmd.batch.jobs import Job, job_seed, split
from lmd.batch.plan import LAYOUTS_FILE, Planned, plan_prompts, read_planned
from lmd.batch.processes import Processes
from lmd.batch.report import INDEX_FILE, BatchSummary, ProcessStats
from lmd.batch.results import DrawnJob, DrawnJobs, drawn_jobs
from lmd.batch.runner import JobContext, render_jobs, run_batch

__all__ = [
    "BENCHMARK",
    "INDEX_FILE",
    "LAYOUTS_FILE",
    "BatchPrompt",
    "BatchSummary",
    "DrawnJob",
    "DrawnJobs",
    "Job",
    "JobContext",
    "Planned",
    "ProcessStats",
    "Processes",
    "drawn_jobs",
    "job_seed",
    "plan_prompts",
    "read_planned",
    "read_prompts",
    "render_jobs",
    "run_batch",
    "split",
]
