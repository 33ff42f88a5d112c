"""``dtnn.tune.pretune`` settles every BestOf convolution, those inside blocks too."""
import dtnn.tune as T
from dtnn.layers import Conv2D, Dense, GlobalAvgPool, ReLU, Residual
from dtnn.models import Sequential
from dtnn.tune.pretune import tuned_convolutions


def test_pretune_settles_convolutions_inside_blocks(tmp_path):
    T.configure(T.TuneOptions(rounds=1, warmup=0, use_cache=False))
    try:
        model = Sequential([Conv2D(4, 3, padding=1, algorithm="bestof"), ReLU(),
                            Residual([Conv2D(4, 3, padding=1, algorithm="bestof")]),
                            GlobalAvgPool(), Dense(3)], input_shape=(1, 8, 8))
        assert len(tuned_convolutions(model)) == 2
        done = T.pretune(model, batch_size=4, eval_batch_size=8, max_steps=50)
        assert done["training"][0] and done["inference"][0], done
        assert done["training"][1] < 50
    finally:
        T.configure()
