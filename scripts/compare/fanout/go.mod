module github.com/switchboard-go/switchboard/scripts/compare/fanout

go 1.26

require github.com/coder/websocket v1.8.14
