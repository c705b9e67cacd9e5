"""An AWS account on the moto server, set up as a user of offload-ecs would set up theirs:
a VPC with a subnet and a security group, a cluster, a bucket, task definitions with
``awslogs`` logging, tagged with the image they run."""

from __future__ import annotations

import os
import uuid
from typing import Any

import boto3

from ecs_harness.agent import REGION, Agent
from ecs_harness.server import MotoServer

CLUSTER = "offload-test"
BUCKET = "offload-test-temporal"
LOG_GROUP = "/offload/test"
#: The image of the end-to-end tests (built offline by scripts/setup_docker.sh).
IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")


class World:
    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.url = server.url
        kw = {"endpoint_url": self.url, "region_name": REGION, "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        self.ecs = boto3.client("ecs", **kw)
        self.ec2 = boto3.client("ec2", **kw)
        self.s3 = boto3.client("s3", **kw)
        self.logs = boto3.client("logs", **kw)
        vpc = self.ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
        self.security_group = self.ec2.create_security_group(GroupName="offload-test", Description="offload tests", VpcId=vpc)["GroupId"]
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.s3.create_bucket(Bucket=BUCKET)
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.agent = Agent(self.url)

    def register(
        self,
        image: str,
        *,
        family: str | None = None,
        tag_key: str | None = "offload.docker.image",
        fargate: bool = True,
        logs: bool = True,
        cpu: str = "256",
        memory: str = "512",
    ) -> str:
        """Register a task definition for ``image``; its ARN."""
        container: dict[str, Any] = {"name": "main", "image": image, "memory": int(memory), "essential": True}
        if logs:
            container["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {"awslogs-group": LOG_GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": "offload"},
            }
        params: dict[str, Any] = {"family": family or f"fam-{uuid.uuid4().hex[:8]}", "containerDefinitions": [container]}
        if fargate:
            params.update(requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu, memory=memory)
        if tag_key:
            params["tags"] = [{"key": tag_key, "value": image}]
        return str(self.ecs.register_task_definition(**params)["taskDefinition"]["taskDefinitionArn"])

    def run_idle_tasks(self, n: int, image: str) -> list[str]:
        """Start ``n`` Fargate tasks of a new definition for ``image`` that stay RUNNING
        (moto moves them on only by hand; no container runs): for the benches. Their ARNs."""
        from moto.moto_api import state_manager

        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**12})
        arn = self.register(image, tag_key=None)
        network = {"awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.security_group]}}
        arns: list[str] = []
        while len(arns) < n:
            response = self.ecs.run_task(cluster=CLUSTER, taskDefinition=arn, launchType="FARGATE", count=min(10, n - len(arns)), networkConfiguration=network)
            arns.extend(t["taskArn"] for t in response["tasks"])
        for tasks in self.agent.backend.tasks.values():  # moto's ECS backend: RUNNING, as the test agent marks them
            for task in tasks.values():
                task.last_status = "RUNNING"
        return arns

    def section(self, **settings: Any) -> dict[str, Any]:
        """A ``command_executor.ecs`` section for this account; ``settings`` go under the cluster."""
        cluster: dict[str, Any] = {
            "region": REGION,
            "endpoint_url": self.url,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "launch_type": "FARGATE",
            "subnets": [self.subnet],
            "security_groups": [self.security_group],
            "stopped_log_wait": 5,
            "run_task_retry_delay": 0.2,
            **settings,
        }
        cluster = {k: v for k, v in cluster.items() if v is not None}
        return {"name": CLUSTER, CLUSTER: cluster, "temporal_storage": {"type": "s3", "s3": {"bucket": BUCKET}}}

    def config(self, **settings: Any) -> dict[str, Any]:
        return {"command_executor": {"type": "ecs", "ecs": self.section(**settings)}}

    def task(self, arn: str) -> dict[str, Any]:
        return dict(self.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0])
