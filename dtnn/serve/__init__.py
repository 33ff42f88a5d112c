"""``dtnn serve``: the drawing page and JSON API over any dtnn checkpoint.

    from dtnn.serve import Predictor
    pred = Predictor("runs/try/checkpoint.h5")
    pred.classify_image(dtnn.data.images.read_image("seven.png"), top_k=3)

``dtnn.serve.app.create_app(predictor)`` is the Starlette application and
``dtnn.serve.server.serve(path, host, port)`` runs it with uvicorn.  The web libraries
are imported only by those two modules.
"""
from dtnn.serve.predictor import Predictor, class_names, softmax

__all__ = ["Predictor", "class_names", "softmax"]
