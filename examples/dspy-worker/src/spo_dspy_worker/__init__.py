"""A session-pool-operator handler that defines and runs DSPy programs kept in the session's data.

    SPO_DSPY_LM=dummy SPO_HANDLER_PORT=8081 python -m spo_dspy_worker
"""
