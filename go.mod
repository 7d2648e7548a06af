module github.com/switchyard-llm/switchyard

go 1.26
