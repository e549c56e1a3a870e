"""Executed by MLflow to build lossval's pyfunc model ("models from code"; see lossval.serving)."""

from mlflow.models import set_model

from lossval.serving import LossvalPyfunc

set_model(LossvalPyfunc())
