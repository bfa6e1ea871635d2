"""Settings shared by every command: environment variables `NGINX_KPI_*`, overridden by flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the pipeline's parts are; the defaults match the local stack (`nginx-kpi stack up`)."""

    model_config = SettingsConfigDict(env_prefix="NGINX_KPI_", extra="ignore")

    brokers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    topic: str = Field("nginx-access", description="Kafka topic of the access-log records")
    group: str = Field("nginx-kpi", description="Kafka consumer group of the KPI consumers")
    dsn: str = Field(
        "postgresql://nginx_kpi@127.0.0.1:15432/nginx_kpi", description="PostgreSQL connection string"
    )
    partitions: int = Field(3, ge=1, description="partitions of the topic when nginx-kpi creates it")
