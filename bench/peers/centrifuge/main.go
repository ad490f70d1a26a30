// Command centrifuge-peer is the Centrifugo benchmark peer: the centrifuge library (the
// engine Centrifugo is built on) behind a WebSocket endpoint, with its Redis broker and
// presence manager on the same Redis Cluster SocketFleet uses. Centrifugo's own module is
// refused by the Go module proxy here, so this is the library configured the way
// Centrifugo configures it for a channel namespace with history and recovery
// (history_size, history_ttl, force_recovery, force_positioning) and client-side publish
// allowed (allow_publish_for_subscriber), and sharded PUB/SUB on a Redis Cluster. Usage:
//
//	REDIS_PASSWORD=... centrifuge-peer -addr 127.0.0.1:8000 -redis 127.0.0.1:7000,127.0.0.1:7001 [-cluster]
//
// SIGTERM shuts the node down gracefully: clients get Centrifugo's "shutdown" disconnect,
// which tells them to reconnect.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	redisAddrs := flag.String("redis", "127.0.0.1:6379", "comma-separated Redis addresses")
	cluster := flag.Bool("cluster", false, "the addresses are Redis Cluster seeds")
	historySize := flag.Int("history-size", 1000, "publications kept per channel for recovery")
	historyTTL := flag.Duration("history-ttl", 5*time.Minute, "how long channel history lives")
	partitions := flag.Int("sharded-pubsub", 16, "sharded PUB/SUB partitions in cluster mode (0: classic PUBLISH)")
	flag.Parse()

	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError, LogHandler: func(e centrifuge.LogEntry) {
		log.Printf("%s %v", e.Message, e.Fields)
	}})
	if err != nil {
		log.Fatal(err)
	}
	shardConf := centrifuge.RedisShardConfig{Address: *redisAddrs}
	if *cluster {
		shardConf = centrifuge.RedisShardConfig{ClusterAddresses: strings.Split(*redisAddrs, ",")}
	}
	// From the environment, not a flag: `ps` shows flags.
	shardConf.Password = os.Getenv("REDIS_PASSWORD")
	shard, err := centrifuge.NewRedisShard(node, shardConf)
	if err != nil {
		log.Fatal(err)
	}
	brokerConf := centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{shard}}
	if *cluster && *partitions > 0 {
		// What the Centrifugo docs recommend on Redis Cluster >= 7: sharded PUB/SUB, so a
		// publication goes to one shard instead of being broadcast over the cluster bus.
		brokerConf.NumShardedPubSubPartitions = *partitions
		brokerConf.UsePrecomputedPartitionTags = true
	}
	broker, err := centrifuge.NewRedisBroker(node, brokerConf)
	if err != nil {
		log.Fatal(err)
	}
	node.SetBroker(broker)
	presence, err := centrifuge.NewRedisPresenceManager(node, centrifuge.RedisPresenceManagerConfig{Shards: []*centrifuge.RedisShard{shard}})
	if err != nil {
		log.Fatal(err)
	}
	node.SetPresenceManager(presence)

	node.OnConnecting(func(_ context.Context, _ centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}}, nil
	})
	node.OnConnect(func(client *centrifuge.Client) {
		client.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{EnableRecovery: true, EnablePositioning: true}}, nil)
		})
		client.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{Options: centrifuge.PublishOptions{HistorySize: *historySize, HistoryTTL: *historyTTL}}, nil)
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	server := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = node.Shutdown(ctx)
		_ = server.Shutdown(ctx)
	}()
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
