"""assessengine: objective, auditable competency assessment for simulator and in-field sessions."""

__version__ = "0.1.0"
