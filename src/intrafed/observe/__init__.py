"""Seeing inside a running node: SIP trace records, their files and pcap, ladders."""
