"""Configuration: a sweep's YAML, validated, and expanded into its trainings.

Owns: reading YAML (:mod:`.yaml_text`), the schema and its one-line errors (:mod:`.schema`,
:mod:`.messages`), config files and overrides (:mod:`.reading`), the trainings a config asks for
(:mod:`.points`) and its dataset (:mod:`.data`).

May import: :mod:`regcore`, :mod:`sweeps.errors`, :mod:`sweeps.settings`. Nothing here imports
Ray or MLflow.
"""
