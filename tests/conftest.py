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


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small tiny world (tokenizer + warm-started policy), built once for the whole test session."""
    from psyco_utils.config import TinyModelConfig
    from psyco_utils.tiny import build_tiny_world

    tiny = TinyModelConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, sft_epochs=1, sft_max_length=128, sft_batch_size=32)
    return build_tiny_world(tmp_path_factory.mktemp("tiny_world"), tiny, seed=7)
