"""The official ``ModelMetrics`` protobuf, built at import time from a descriptor written here.

Field numbers and types are those of ``nasbench/lib/model_metrics.proto`` (proto2, package
``nasbench``), so the ``protobuf`` runtime parses the official bytes; no ``protoc`` step and no
generated ``_pb2`` file are needed. Unknown fields (some re-trained tables add their own) are
kept by the runtime and ignored here.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="lanas_nasbench101_model_metrics.proto",
                                               package="nasbench", syntax="proto2")
    evaluation = proto.message_type.add(name="EvaluationData")
    for number, name, kind in [
        (1, "current_epoch", _F.TYPE_DOUBLE),
        (2, "training_time", _F.TYPE_DOUBLE),
        (3, "train_accuracy", _F.TYPE_DOUBLE),
        (4, "validation_accuracy", _F.TYPE_DOUBLE),
        (5, "test_accuracy", _F.TYPE_DOUBLE),
        (6, "checkpoint_path", _F.TYPE_STRING),
    ]:
        evaluation.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(name="evaluation_data", number=1, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                      type_name=".nasbench.EvaluationData")
    metrics.field.add(name="trainable_parameters", number=2, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=_F.TYPE_DOUBLE, label=_F.LABEL_OPTIONAL)
    return proto


# A private pool: never clashes with another copy of the same proto loaded in the process.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
ModelMetrics = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("nasbench.ModelMetrics"))
EvaluationData = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("nasbench.EvaluationData"))
