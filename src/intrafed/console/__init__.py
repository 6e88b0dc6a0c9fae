"""The web console: the OCS Front End Properties tabs and the IM and Presence pages, served
from a node's home, editing it through the same functions as the CLI."""
