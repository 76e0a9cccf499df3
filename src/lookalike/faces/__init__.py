"""Face detection, alignment and embedding.

* :mod:`~lookalike.faces.types`: ``DetectedFace``, ``ModelCard`` and the ``Detector`` / ``FaceModel``
  protocols;
* :mod:`~lookalike.faces.detectors`: the MTCNN detector shared by every model;
* :mod:`~lookalike.faces.align`: 5-point similarity alignment onto the ArcFace template;
* :mod:`~lookalike.faces.models`: the identity models (``fr-feature``, ``mobilefacenet``, ``facenet``,
  ``dlib-resnet``, ``fusion``);
* :mod:`~lookalike.faces.registry`: model names -> cards and factories (``get_model``, ``list_cards``).

Typical use::

    from lookalike.faces.registry import get_model

    model = get_model()  # the default model
    faces = model.detect(rgb_image)
    vectors = model.embed([(rgb_image, face) for face in faces])
"""
