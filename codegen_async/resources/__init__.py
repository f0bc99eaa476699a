"""One module per API area; each is thin: build the request, call the pipeline, return a model."""

from .agent_runs import AgentRuns
from .cli_rules import CLIRulesResource
from .functions import FunctionOutcome, Functions
from .integrations import Integrations
from .mcp_providers import MCPProviders
from .oauth import OAuth
from .organizations import Organizations
from .pull_requests import PullRequests
from .repositories import Repositories
from .sandbox import Sandbox
from .setup_commands import SetupCommands
from .slack_connect import SlackConnect
from .users import Users

__all__ = [
    "AgentRuns",
    "CLIRulesResource",
    "FunctionOutcome",
    "Functions",
    "Integrations",
    "MCPProviders",
    "OAuth",
    "Organizations",
    "PullRequests",
    "Repositories",
    "Sandbox",
    "SetupCommands",
    "SlackConnect",
    "Users",
]
