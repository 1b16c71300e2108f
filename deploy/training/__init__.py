"""Training as an ECS task: the runner, its command and the event trigger."""
