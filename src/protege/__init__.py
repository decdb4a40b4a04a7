"""protege: imitation learning from an expert's demonstrations and corrections."""

__version__ = "0.1.0"
