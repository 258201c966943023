"""The evaluation job's runner (registered on import; EvaluationConfig.ready imports it)."""
