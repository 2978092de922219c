# The fraudstream CLI in a container (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fraudstream ./fraudstream
COPY stream ./stream
COPY producer ./producer
COPY models ./models
RUN pip install --no-cache-dir .
ENTRYPOINT ["fraudstream"]
CMD ["--help"]
