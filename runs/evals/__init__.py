"""Evaluation: golden suites run end to end in isolation, with recorded model answers and faults.

``suite`` reads and checks a suite file, ``faults`` and ``cassettes`` shape what the
tools and the model answer, ``runner`` drives each task through the real lifecycle,
``expectations`` judges the outcome, ``metrics`` stores a suite run and its bands,
``reports`` prints it (table, JSON, JUnit) and ``golden`` turns a run into a task.
"""
