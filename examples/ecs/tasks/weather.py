"""Task code for examples/ecs/flow.dig: it runs inside the ECS task's container."""

import platform

import offload_env


def forecast(city: str, days: int) -> None:
    temps = [18 + (len(city) * (i + 3)) % 9 for i in range(int(days))]
    print(f"forecast for {city} on {platform.node() or 'a container'}: {temps}")
    offload_env.store(days_forecast=int(days), warmest=max(temps))
