"""Volume templates and the volume test suite (fio jobs and their grading)."""
