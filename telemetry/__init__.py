"""runcap's telemetry: GenAI spans and metrics through the OpenTelemetry API (``genai``), and the
SDK and OTLP exporters that only the processes configure (``setup``)."""
