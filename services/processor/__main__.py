"""Processor process: derived N-minute bars and incremental indicators for every symbol.

Sockets: SUB coordinator, PUB derived (one answer per STEP/HISTORY/CATCHUP_SNAPSHOT), DEALER registration and acks.
Run: python -m services.processor --config configs/default.json
"""
from common.stage.cli import answering_stage_command
from services.processor.handler import ProcessorHandler

main = answering_stage_command("processor", ProcessorHandler, "Run the processor.")

if __name__ == "__main__":
    main()
