"""The DSPy worker over the contract, with DSPy's DummyLM: define, execute, list, history."""

from __future__ import annotations

import json

from worker_process import Session, Worker


def test_ready_lists_the_dspy_handlers(worker: Worker) -> None:
    status, body = worker.request("GET", "/contract/v1/ready")
    assert status == 200
    assert [h["name"] for h in body["handlers"]] == ["define_program", "execute_program", "list_programs", "get_history"]


def test_define_then_execute_runs_dspy_and_keeps_state_and_history(worker: Worker) -> None:
    session = Session(worker, "s-define")
    status, body = session.call("define_program", {"name": "qa", "signature": "question -> answer", "instructions": "Answer in one word."})
    assert status == 200
    assert body["result"] == {
        "name": "qa",
        "module": "Predict",
        "signature": "question -> answer",
        "instructions": "Answer in one word.",
        "inputs": ["question"],
        "outputs": ["answer"],
        "replaced": False,
    }
    record = session.data["programs"]["qa"]
    assert record["state"]["signature"]["instructions"] == "Answer in one word."
    assert session.data["history"] == []

    for question in ["Capital of France?", "Capital of Peru?", "Capital of Chad?"]:
        status, body = session.call("execute_program", {"name": "qa", "inputs": {"question": question}})
        assert status == 200, body
        # The default DummyLM answer names the program, the field and the input: it came through DSPy.
        assert body["result"] == {"program": "qa", "outputs": {"answer": f"qa answer for: {question}"}}
    assert [turn["inputs"]["question"] for turn in session.data["history"]] == ["Capital of France?", "Capital of Peru?", "Capital of Chad?"]
    assert session.data["history"][0] == {"program": "qa", "inputs": {"question": "Capital of France?"}, "outputs": {"answer": "qa answer for: Capital of France?"}}
    assert session.data["programs"]["qa"] == record  # running a program does not change it

    status, body = session.call("list_programs")
    assert status == 200 and "data" not in body
    assert body["result"]["historyLength"] == 3
    assert [p["name"] for p in body["result"]["programs"]] == ["qa"]
    status, body = session.call("get_history", {"program": "qa", "last": 1})
    assert body["result"]["history"][0]["inputs"] == {"question": "Capital of Chad?"}


def test_chain_of_thought_field_lists_and_configured_answers(worker: Worker) -> None:
    session = Session(worker, "s-cot")
    status, body = session.call(
        "define_program",
        {
            "name": "counter",
            "module": "ChainOfThought",
            "inputs": [{"name": "text", "desc": "the text to read"}],
            "outputs": [{"name": "count", "type": "int", "desc": "how many words"}],
        },
    )
    assert status == 200, body
    assert body["result"]["signature"] == "text -> count: int"
    state = session.data["programs"]["counter"]["state"]
    assert state["predict"]["signature"]["fields"][0]["description"] == "the text to read"
    status, body = session.call("execute_program", {"name": "counter", "inputs": {"text": "one two three"}})
    assert status == 200, body
    # SPO_DSPY_DUMMY_ANSWERS gave count = 3; DSPy parsed it into the int output field.
    assert body["result"]["outputs"] == {"reasoning": "counter reasoning for: one two three", "count": 3}


def test_a_program_with_a_dspy_history_input_gets_its_past_turns(worker: Worker) -> None:
    session = Session(worker, "s-chat")
    status, _ = session.call("define_program", {"name": "chat", "signature": "question, history: dspy.History -> answer"})
    assert status == 200
    for question in ["hi", "and then?"]:
        status, body = session.call("execute_program", {"name": "chat", "inputs": {"question": question}})
        assert status == 200, body
    # The turns stored are the client's inputs; the history passed to DSPy is not nested in them.
    assert [t["inputs"] for t in session.data["history"]] == [{"question": "hi"}, {"question": "and then?"}]
    status, body = session.call("execute_program", {"name": "chat", "inputs": {"question": "q", "history": [{"question": "a", "answer": "b"}]}})
    assert status == 200, body
    status, body = session.call("execute_program", {"name": "chat", "inputs": {"question": "q", "history": "not a list"}})
    assert (status, body["error"]["code"]) == (400, "INVALID_ARGS")


def test_redefining_replaces_and_every_program_is_kept(worker: Worker) -> None:
    session = Session(worker, "s-many")
    session.call("define_program", {"name": "a", "signature": "x -> y"})
    session.call("define_program", {"name": "b", "signature": "x -> z"})
    status, body = session.call("define_program", {"name": "a", "signature": "x -> w", "instructions": "New."})
    assert status == 200 and body["result"]["replaced"] is True
    assert sorted(session.data["programs"]) == ["a", "b"]
    assert session.call("execute_program", {"name": "a", "inputs": {"x": "1"}})[1]["result"]["outputs"] == {"w": "a w for: 1"}


def test_typed_errors_leave_the_session_alone(worker: Worker) -> None:
    session = Session(worker, "s-errors")
    session.call("define_program", {"name": "qa", "signature": "question -> answer"})
    before = json.dumps(session.data)
    cases = [
        ("execute_program", {"name": "nope", "inputs": {}}, 422, "UNKNOWN_PROGRAM"),
        ("execute_program", {"name": "qa", "inputs": {"q": "x"}}, 400, "INVALID_ARGS"),
        ("execute_program", "qa", 400, "INVALID_ARGS"),
        ("define_program", {"name": "bad name", "signature": "a -> b"}, 400, "INVALID_ARGS"),
        ("define_program", {"name": "x", "signature": "__import__('os').system('true') -> a"}, 400, "INVALID_ARGS"),
        ("define_program", {"name": "x", "signature": "a -> "}, 400, "INVALID_ARGS"),
        ("define_program", {"name": "x", "signature": "a -> b", "module": "ReAct"}, 400, "INVALID_ARGS"),
        ("get_history", {"last": -1}, 400, "INVALID_ARGS"),
    ]
    for handler, args, status, code in cases:
        answer_status, body = session.call(handler, args)
        assert (answer_status, body["error"]["code"]) == (status, code), (handler, args, body)
    assert json.dumps(session.data) == before


def test_an_lm_smuggled_into_the_state_is_not_loaded(worker: Worker) -> None:
    session = Session(worker, "s-smuggle")
    session.call("define_program", {"name": "qa", "signature": "question -> answer"})
    session.data["programs"]["qa"]["state"]["lm"] = {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9"}
    status, body = session.call("execute_program", {"name": "qa", "inputs": {"question": "still dummy?"}})
    assert (status, body["result"]["outputs"]) == (200, {"answer": "qa answer for: still dummy?"})


def test_a_broken_program_record_is_a_typed_error(worker: Worker) -> None:
    session = Session(worker, "s-broken")
    session.data = {"programs": {"qa": {"module": "Predict", "signature": "question -> answer", "inputs": ["question"], "outputs": ["answer"], "state": "nope"}}}
    status, body = session.call("execute_program", {"name": "qa", "inputs": {"question": "x"}})
    assert (status, body["error"]["code"]) == (422, "BROKEN_PROGRAM")


def test_without_an_lm_configured_the_worker_exits_1_and_says_why() -> None:
    process = Worker({"SPO_DSPY_LM": ""})
    assert process.process.wait(120) == 1
    assert "SPO_DSPY_LM is not set" in process.stderr()
    process.stop()
