import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # the repository root: standin/


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: see psyco_utils/book.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


#: Ratings the hand-made pairs give each bundled style, on every principle.
STYLE_QUALITY = {"empathic": 5, "directive": 3, "generic": 3, "rambling": 2, "dismissive": 1}


def handmade_pairs(n_statements: int = 40):
    """Hand-made pairs from the bundled corpus, in the released schema: each statement's empathic response against
    its dismissive (even rows) or generic (odd rows) one, rated by :data:`STYLE_QUALITY`."""
    import pandas as pd

    from psyco_utils import data
    from psyco_utils.principles import PRINCIPLE_KEYS

    statements, responses = data.load_bundled_corpus()
    statements = statements[statements["edge_case"].isna()].head(n_statements)
    by_style = responses.pivot_table(index="statement_id", columns="style", values="text", aggfunc="first")
    rows = []
    for i, row in enumerate(statements.itertuples()):
        good, bad = "empathic", ("dismissive" if i % 2 == 0 else "generic")
        pair = {"ID": row.id, "prefID": i, "question": row.text, "chosen": by_style.at[row.id, good],
                "rejected": by_style.at[row.id, bad], "chosen_model": good, "rejected_model": bad, "theme": row.theme}
        for key in PRINCIPLE_KEYS:
            pair[f"chosen_{key}_rating"] = STYLE_QUALITY[good]
            pair[f"rejected_{key}_rating"] = STYLE_QUALITY[bad]
        rows.append(pair)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small tiny world (tokenizer + warm-started policy), built once for the whole test session."""
    from psyco_utils.config import TinyModelConfig
    from psyco_utils.tiny import build_tiny_world

    tiny = TinyModelConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, sft_epochs=1, sft_max_length=128, sft_batch_size=32)
    return build_tiny_world(tmp_path_factory.mktemp("tiny_world"), tiny, seed=7)


def write_chapter_01_outputs(run, statements: int, crisis=lambda i: False) -> tuple:
    """Chapter 01's statements table and response pool, as it leaves them, from the first ``statements`` bundled
    statements without an edge case (4 bundled responses each); ``crisis(i)`` flags statement ``i``.  Returns both
    frames."""
    import pandas as pd

    from psyco_utils import data
    from psyco_utils.layout import RunLayout

    corpus, responses = data.load_bundled_corpus()
    chosen = corpus[corpus["edge_case"].isna()].head(statements)
    frame = pd.DataFrame({"statement_id": "bundled:" + chosen["id"], "source": "bundled", "source_id": chosen["id"],
                          "text": chosen["text"], "chars": chosen["text"].str.len(), "theme": chosen["theme"],
                          "crisis": [bool(crisis(i)) for i in range(len(chosen))], "pii_replaced": 0})
    pool = responses[responses["statement_id"].isin(chosen["id"])].groupby("statement_id").head(4)
    pool = pd.DataFrame({"statement_id": "bundled:" + pool["statement_id"],
                         "response_id": "bundled:" + pool["statement_id"] + "#" + pool["style"],
                         "generator": "bundled-" + pool["style"], "response": pool["text"],
                         "chars": pool["text"].str.len()})
    layout = RunLayout(run)
    layout.statements_dir.mkdir(parents=True)
    layout.pool_dir.mkdir(parents=True)
    frame.to_parquet(layout.statements, index=False)
    pool.to_parquet(layout.pool, index=False)
    return frame, pool
