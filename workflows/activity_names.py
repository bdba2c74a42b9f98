"""Activity names, one per block type, so the Temporal UI reads as what each activity does."""

from __future__ import annotations

BLOCK_ACTIVITIES = {
    "start_document": "ReadDocumentInput",
    "start_json": "ReadJsonInput",
    "parse": "ParseDocument",
    "extract": "ExtractData",
    "classifier": "ClassifyDocument",
    "split": "SplitDocument",
    "conditional": "EvaluateConditions",
    "function": "RunFunction",
    "merge_dicts": "MergeDicts",
    "api_call": "CallApi",
}
LOAD_GRAPH = "LoadWorkflowVersion"
PERSIST_RUN = "PersistRunSummary"
APPLY_REVIEW_DECISION = "ApplyReviewDecision"
CLOSE_REVIEWS = "CloseReviews"
SEND_WEBHOOK = "SendWebhook"
PERSIST_EXECUTION = "PersistBlockExecution"
JUDGE_TEST = "JudgeTest"
PERSIST_TEST_RUN = "PersistTestRun"
PREPARE_LOOP_ITEMS = "ListLoopItems"
LOAD_LOOP_ITEMS = "LoadLoopItems"
CHECK_LOOP_TERMINATION = "CheckLoopTermination"
RECORD_LOOP = "RecordLoopStep"
STORE_LOOP_BATCH = "StoreLoopBatch"
