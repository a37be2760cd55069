"""Quality process: per-symbol data quality (% of expected bars present) and gap lists.

Sockets: SUB coordinator, PUB quality (one answer per STEP/HISTORY/CATCHUP_SNAPSHOT/SESSION_END), DEALER registration and acks.
Run: python -m services.quality --config configs/default.json
"""
from common.stage.cli import answering_stage_command
from services.quality.handler import QualityHandler

main = answering_stage_command("quality", QualityHandler, "Run the quality monitor.")

if __name__ == "__main__":
    main()
