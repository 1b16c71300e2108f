"""The direct numpy path (text) answers exactly what predict_proba answers, or is not used at all."""

import numpy as np
import pytest

from model.recipes import load_recipe
from service.fastpath import compile_proba
from service.predict import Predictor


def test_a_table_of_numbers_without_model_onnx_is_served_by_scikit_learn(trained_digits):
    """The hand-written path for scaling + logistic regression is gone: onnxruntime serves that
    pipeline when it is compiled (as fast), and scikit-learn when it is not."""
    import io

    import joblib

    artifact, manifest = trained_digits
    estimator = joblib.load(io.BytesIO(artifact))
    predictor = Predictor(estimator, manifest, max_batch=10)
    assert predictor.path == "sklearn"
    assert compile_proba(estimator, ["a text"]) is None  # not a text pipeline
    rows = [manifest["example"], [0.0] * 64]
    predictions, labels = predictor.predict(predictor.to_matrix(rows))
    expected = estimator.predict_proba(np.asarray(rows))
    for got, want in zip(predictions, expected, strict=True):
        assert [got["probabilities"][str(c)] for c in range(10)] == pytest.approx(want, abs=1e-12)
    assert labels == [int(np.argmax(row)) for row in expected]


def _text_model(**params):
    from bench.textdata import make_corpus
    from model.data import Dataset

    texts, labels = make_corpus(classes=5, docs_per_class=30, words=40, vocab=600)
    dataset = Dataset(texts, np.asarray(labels), "text", None, "synthetic", "0")
    return load_recipe("tfidf").build(params, 0, None).fit(dataset.X, dataset.y), texts


@pytest.mark.parametrize("params", [{}, {"ngram_max": "2"}, {"min_df": "2"}])
def test_text_direct_path_matches_predict_proba(params):
    estimator, texts = _text_model(**params)
    proba = compile_proba(estimator, texts[:2])
    assert proba is not None
    probe = [*texts[::7], "", "nothing known here", texts[0].upper() + " " + texts[1]]
    np.testing.assert_allclose(proba(probe), estimator.predict_proba(probe), rtol=0, atol=1e-10)


def test_binary_text_model_matches():
    estimator, texts = _text_model()
    labels = ["even" if i % 2 else "odd" for i in range(len(texts))]
    estimator.fit(texts, labels)
    proba = compile_proba(estimator, texts[:2])
    assert proba is not None
    np.testing.assert_allclose(proba(texts), estimator.predict_proba(texts), rtol=0, atol=1e-10)


def test_a_mismatch_disables_the_direct_path():
    estimator, texts = _text_model()

    class Drifted(type(estimator)):
        def predict_proba(self, X):  # stands for any estimator whose arithmetic differs
            return super().predict_proba(X)[:, ::-1]

    assert compile_proba(Drifted(estimator.steps), texts[:2]) is None


def test_text_vectorizer_options_it_does_not_reproduce_keep_predict_proba():
    estimator, texts = _text_model()
    estimator.steps[0][1].set_params(norm="l1")
    assert compile_proba(estimator, texts[:2]) is None


def test_predictor_uses_the_direct_path_for_a_text_model():
    estimator, _ = _text_model()
    manifest = {"name": "topics", "version": "v", "classes": list(estimator.classes_),
                "input_schema": {"type": "text"}, "example": "w0001 w0002"}
    predictor = Predictor(estimator, manifest, max_batch=10)
    assert predictor.path == "numpy"
    texts = ["w0003 w0004 w0003", "unknown words only"]
    predictions, _ = predictor.predict(predictor.to_matrix(texts))
    expected = estimator.predict_proba(texts)
    for got, want in zip(predictions, expected, strict=True):
        assert [got["probabilities"][str(c)] for c in estimator.classes_] == pytest.approx(want, abs=1e-12)
