"""Operations: rolling out the model service (locally and on ECS)."""
